//! The command line: flags parsed once into settings, one module per command.
