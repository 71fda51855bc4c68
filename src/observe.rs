//! Asks the adapters for exactly the live state a plan or a drift report needs: one tag
//! list per target repository, one HEAD per tag Git names (or per digest, for a tag that
//! does not exist yet), and HEADs of other tags only when drift or prune needs them.
