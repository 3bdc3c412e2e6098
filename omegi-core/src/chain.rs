//! Printing an error with its causes, each once.
//!
//! Omegi's errors follow one rule: an error's `Display` says only its own
//! part ("cannot listen on 127.0.0.1:7700"), and
//! [`source`](std::error::Error::source) gives the error that caused it. A
//! message for a person is the whole chain, which [`ErrorChain`] writes.

use std::error::Error;
use std::fmt;

/// How many causes [`ErrorChain`] writes at most: a chain longer than this
/// is cut (a buggy `source` that loops must not hang a log line).
pub const MAX_CAUSES: usize = 32;

/// Displays an error and its [`source`](Error::source) chain, `: `
/// between them, each cause once.
///
/// ```
/// use omegi_core::ErrorChain;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("cannot read the settings")]
/// struct Settings(#[source] std::io::Error);
///
/// let error = Settings(std::io::Error::other("disk on fire"));
/// assert_eq!(ErrorChain(&error).to_string(), "cannot read the settings: disk on fire");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        let mut written = 0;
        while let Some(cause) = source {
            if written == MAX_CAUSES {
                return f.write_str(": …");
            }
            write!(f, ": {cause}")?;
            written += 1;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Looping;

    impl fmt::Display for Looping {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("again")
        }
    }

    impl Error for Looping {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(self)
        }
    }

    #[test]
    fn a_looping_chain_is_cut() {
        let text = ErrorChain(&Looping).to_string();
        assert_eq!(text.matches("again").count(), MAX_CAUSES + 1);
        assert!(text.ends_with(": …"), "{text}");
    }

    #[test]
    fn an_error_without_source_is_its_message() {
        let error = std::io::Error::other("plain");
        assert_eq!(ErrorChain(&error).to_string(), "plain");
    }
}
