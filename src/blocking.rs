//! Blocking file work (locks, reads, fsync, renames) run on tokio's blocking threads, so that
//! waiting on a disk or on another process's lock never holds up the async runtime.

/// Runs `work` on a blocking thread and returns its result. A panic there is carried on as
/// a panic (it is a bug); a runtime shutting down before the work ran becomes the error
/// `cancelled` makes of an [`std::io::ErrorKind::Interrupted`] error.
pub(crate) async fn run<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
    cancelled: impl FnOnce(std::io::Error) -> E,
) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(cancelled(std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            format!("file work cancelled: {e}"),
        ))),
    }
}
