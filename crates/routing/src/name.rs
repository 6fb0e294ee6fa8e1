//! The one definition of a validated name: a `String` newtype that can only hold a value its validation
//! function accepted, so a name that could change the command it is spliced into never reaches a daemon.
//!
//! [`BirdProtocolName`](crate::BirdProtocolName), [`RouteMapName`](crate::RouteMapName) and
//! [`VrfName`](crate::frr::VrfName) differ only in their rules and error types; everything else (the
//! constructor, `as_str`, `Display`, `FromStr`, the `String` conversions and serde through them, so a config
//! file is validated as it is read) is written once here.

/// Defines a validated-name newtype.
///
/// `validate` is a `fn(String) -> Result<String, Error>`: it returns the name when acceptable (taking
/// it by value lets its errors own the rejected text without a copy) and the type's error otherwise.
/// `daemon` completes the doc comment of `as_str` ("The name as BIRD knows it.").
macro_rules! validated_name {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
        error: $error:ty;
        validate: $validate:path;
        daemon: $daemon:literal;
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
        #[serde(try_from = "String", into = "String")]
        $vis struct $name(String);

        impl $name {
            /// Validates `name` (see the type's documentation for the rules).
            pub fn new(name: impl Into<String>) -> Result<$name, $error> {
                $validate(name.into()).map($name)
            }

            #[doc = concat!("The name as ", $daemon, " knows it.")]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $error;

            fn from_str(s: &str) -> Result<$name, $error> {
                $name::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;

            fn try_from(s: String) -> Result<$name, $error> {
                $name::new(s)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }
    };
}

pub(crate) use validated_name;
