//! The key layout in etcd, in one place: `<prefix>/<fleet>/services/<service>/<node>`.
//!
//! Names are validated (no `/`), so a key splits back into its parts unambiguously and a service's records
//! form one contiguous key range, which is what the guard's transaction compares.

use crate::error::SettingsError;

/// The longest fleet, node or service name.
const MAX_NAME: usize = 128;

/// Checks that `value` can be one path segment of a key: 1 to 128 characters, no `/`, whitespace or control
/// characters. `what` names the setting in the error.
pub fn check_name(what: &'static str, value: &str) -> Result<(), SettingsError> {
    let ok = !value.is_empty()
        && value.chars().count() <= MAX_NAME
        && !value
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(SettingsError::BadName {
            what,
            value: value.to_owned(),
        })
    }
}

/// Builds and parses the keys of one fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `<prefix>/<fleet>/services/`, the root of every record.
    services: String,
}

impl Keys {
    /// The layout for `fleet` under `prefix` (e.g. `/nsbeacon`; a trailing `/` is ignored).
    pub fn new(prefix: &str, fleet: &str) -> Keys {
        Keys {
            services: format!("{}/{fleet}/services/", prefix.trim_end_matches('/')),
        }
    }

    /// The root of every record of the fleet: watch and read this prefix for the whole fleet view.
    pub fn services_prefix(&self) -> &str {
        &self.services
    }

    /// `<...>/services/<service>/`: the range that holds one service's records.
    pub fn service_prefix(&self, service: &str) -> String {
        format!("{}{service}/", self.services)
    }

    /// The key of `node`'s record for `service`.
    pub fn record(&self, service: &str, node: &str) -> String {
        format!("{}{service}/{node}", self.services)
    }

    /// Splits a record key into (service, node), or `None` for a key outside the layout.
    pub fn parse<'k>(&self, key: &'k str) -> Option<(&'k str, &'k str)> {
        let rest = key.strip_prefix(self.services.as_str())?;
        let (service, node) = rest.split_once('/')?;
        (!service.is_empty() && !node.is_empty() && !node.contains('/')).then_some((service, node))
    }
}

/// The end of the key range of every key that starts with `prefix` (etcd's `range_end`): the prefix with its
/// last byte incremented. The prefixes here end in `/`, so the increment never overflows.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // An all-0xff (or empty) prefix: etcd's "\0" means "to the end of the keyspace".
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_back_into_service_and_node() {
        let keys = Keys::new("/nsbeacon/", "prod");
        assert_eq!(keys.services_prefix(), "/nsbeacon/prod/services/");
        let key = keys.record("dns", "ams-1");
        assert_eq!(key, "/nsbeacon/prod/services/dns/ams-1");
        assert_eq!(keys.parse(&key), Some(("dns", "ams-1")));
        assert_eq!(keys.parse("/nsbeacon/prod/services/dns/"), None);
        assert_eq!(keys.parse("/nsbeacon/other/services/dns/a"), None);
        assert_eq!(keys.parse("/nsbeacon/prod/services/dns/a/b"), None);
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
    }

    #[test]
    fn names_with_slashes_or_spaces_are_refused() {
        assert!(check_name("node name", "ams-1.example.net").is_ok());
        for bad in ["", "a/b", "a b", "a\tb", &"x".repeat(129)] {
            assert!(check_name("node name", bad).is_err(), "{bad:?}");
        }
    }
}
