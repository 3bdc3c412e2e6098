//! Where the layer reads the OpenTelemetry environment variables
//! (`OTEL_*`): the process environment, or variables the code gives.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The source of the `OTEL_*` settings that the layer and the OTLP sink
/// read: [`Environment::process`] (the default) or a fixed set of variables
/// given by the code ([`Environment::from_vars`]), for tests or settings
/// that come from a configuration file.
///
/// As the OpenTelemetry specification says, a variable set to the empty
/// string counts as unset.
///
/// ```
/// use omegi_layer::Environment;
///
/// let env = Environment::from_vars([("OTEL_SERVICE_NAME", "checkout")]);
/// assert_eq!(env.get("OTEL_SERVICE_NAME").as_deref(), Some("checkout"));
/// assert_eq!(env.get("OTEL_SDK_DISABLED"), None);
/// ```
#[derive(Clone, Default)]
pub struct Environment {
    /// `None`: the process environment.
    vars: Option<Arc<HashMap<String, String>>>,
}

impl Environment {
    /// The process environment, read when a setting is needed.
    pub fn process() -> Self {
        Environment { vars: None }
    }

    /// Exactly these variables, and no others.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Environment {
            vars: Some(Arc::new(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            )),
        }
    }

    /// The value of the variable `name`; `None` when it is unset, empty or
    /// not Unicode.
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match &self.vars {
            None => std::env::var(name).ok(),
            Some(vars) => vars.get(name).cloned(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// `OTEL_SDK_DISABLED=true` (case-insensitive): the layer captures
    /// nothing and exports nothing.
    pub fn sdk_disabled(&self) -> bool {
        self.get("OTEL_SDK_DISABLED")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may hold secrets (OTEL_EXPORTER_OTLP_HEADERS): names only.
        match &self.vars {
            None => f.write_str("Environment::process()"),
            Some(vars) => {
                let mut names: Vec<&String> = vars.keys().collect();
                names.sort();
                f.debug_struct("Environment").field("vars", &names).finish()
            }
        }
    }
}

/// Decodes `%XX` escapes, as `OTEL_RESOURCE_ATTRIBUTES` and
/// `OTEL_EXPORTER_OTLP_HEADERS` values use them.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `key=value` pairs separated by commas, values percent-decoded; pairs
/// without `=` or with an empty key are skipped.
pub(crate) fn key_value_list(s: &str) -> impl Iterator<Item = (String, String)> + '_ {
    s.split(',').filter_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        let key = key.trim();
        (!key.is_empty()).then(|| (key.to_owned(), percent_decode(value.trim())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn empty_values_count_as_unset_and_disabled_means_true() {
        let env = Environment::from_vars([("A", ""), ("OTEL_SDK_DISABLED", "TRUE")]);
        assert_eq!(env.get("A"), None);
        assert!(env.sdk_disabled());
        assert!(!Environment::from_vars([("OTEL_SDK_DISABLED", "1")]).sdk_disabled());
        assert!(!Environment::from_vars([("OTEL_SDK_DISABLED", "false")]).sdk_disabled());
    }

    #[test]
    fn key_value_lists_skip_what_is_not_a_pair() {
        let pairs: Vec<_> = key_value_list("a=1, b = x%3Dy ,junk,=v,c=").collect();
        assert_eq!(
            pairs,
            [
                ("a".into(), "1".into()),
                ("b".into(), "x=y".into()),
                ("c".into(), String::new())
            ]
        );
    }

    #[test]
    fn debug_output_shows_names_not_values() {
        let env = Environment::from_vars([("OTEL_EXPORTER_OTLP_HEADERS", "authorization=secret")]);
        let shown = format!("{env:?}");
        assert!(shown.contains("OTEL_EXPORTER_OTLP_HEADERS") && !shown.contains("secret"));
    }
}
