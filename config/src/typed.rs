//! `typed_config!`: declares a typed config struct whose fields map one-to-one
//! to registry keys, and generates the key ↔ field glue (`Default`, `value`,
//! `set_value`, `FIELD_KEYS`) so that the mapping is written exactly once per key.
//!
//! The Rust default next to each field must equal the registry's textual
//! default; the test suite checks this for every key.

macro_rules! typed_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $field:ident : $ty:ty = $key:literal => $default:expr, )*
        }
        extra {
            $( $(#[$xmeta:meta])* $xvis:vis $xfield:ident : $xty:ty = $xdefault:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $(
                #[doc = concat!("Config `", $key, "` (see the key registry for its meaning and range).")]
                pub $field: $ty,
            )*
            $( $(#[$xmeta])* $xvis $xfield: $xty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $( $field: $default, )*
                    $( $xfield: $xdefault, )*
                }
            }
        }

        impl $name {
            /// Every registry key that has a typed field here.
            pub const FIELD_KEYS: &'static [&'static str] = &[$($key),*];

            /// The current value of `key` as a registry [`Value`](crate::Value),
            /// read from the typed field; `None` if `key` has no field here.
            pub fn value(&self, key: &str) -> Option<$crate::value::Value> {
                use $crate::value::FieldValue;
                match key {
                    $( $key => Some(self.$field.to_value()), )*
                    _ => None,
                }
            }

            /// Stores a validated value into the field for `key`.
            fn set_value(&mut self, key: &str, v: &$crate::value::Value) -> Result<(), $crate::error::ConfigError> {
                use $crate::value::FieldValue;
                let internal = || $crate::error::ConfigError::Internal { key: key.to_owned() };
                match key {
                    $( $key => self.$field = <$ty>::from_value(v).ok_or_else(internal)?, )*
                    _ => return Err(internal()),
                }
                Ok(())
            }
        }
    };
}

pub(crate) use typed_config;
