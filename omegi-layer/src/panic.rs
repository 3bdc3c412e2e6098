//! The opt-in panic hook: a panic becomes an error record with the span
//! stack of the panicking thread. The record's message is the panic's own
//! (`panic.message`), its type `panic`; the log line says `panicked: …`.

use std::sync::Once;

static INSTALL: Once = Once::new();

/// Installs the hook once per process; the previous hook still runs after it.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Box<dyn Any>".to_owned());
            let backtrace = std::backtrace::Backtrace::force_capture().to_string();
            match info.location() {
                Some(location) => tracing::error!(
                    omegi.panic = true,
                    panic.file = location.file(),
                    panic.line = location.line(),
                    panic.message = message.as_str(),
                    exception.stacktrace = backtrace.as_str(),
                    "panicked: {message}"
                ),
                None => tracing::error!(
                    omegi.panic = true,
                    panic.message = message.as_str(),
                    exception.stacktrace = backtrace.as_str(),
                    "panicked: {message}"
                ),
            }
            previous(info);
        }));
    });
}
