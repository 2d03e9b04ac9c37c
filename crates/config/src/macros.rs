//! `settings_struct!`: the one place a setting is declared. From a list of
//!
//! ```text
//! /// One line of help.
//! name: Type = default => meta().range…().grid().when(…);
//! ```
//!
//! it generates the struct (the doc line becomes the field's rustdoc and the setting's help), its `Default`, the
//! metadata entries ([`crate::Setting`]), and get/set by name through [`crate::schema::Fields`]. The root struct also
//! lists its `groups` (one struct each) and `extra` fields that are not settings.

macro_rules! settings_struct {
    (
        #[doc = $sdoc:literal]
        pub struct $Name:ident in $prefix:literal {
            $(
                #[doc = $help:literal]
                $field:ident : $ty:ty = $default:expr => $meta:expr;
            )*
        }
        $( groups { $( $gfield:ident : $Gty:ident, )* } )?
        $( extra { $( #[doc = $edoc:literal] $efield:ident : $Ety:ty = $edefault:expr, )* } )?
    ) => {
        #[doc = $sdoc]
        #[derive(Debug, Clone, PartialEq)]
        pub struct $Name {
            $( #[doc = $help] pub $field: $ty, )*
            $($( #[doc = concat!("The `", stringify!($gfield), "` group.")] pub $gfield: $Gty, )*)?
            $($( #[doc = $edoc] pub $efield: $Ety, )*)?
        }

        impl Default for $Name {
            fn default() -> Self {
                Self {
                    $( $field: $default, )*
                    $($( $gfield: <$Gty>::default(), )*)?
                    $($( $efield: $edefault, )*)?
                }
            }
        }

        impl $Name {
            /// One line on what the struct holds (its doc comment); unused for the root.
            #[allow(dead_code)]
            pub(crate) const HELP: &'static str = $sdoc;

            /// Appends the metadata of these settings (then of each group's), in declaration order.
            pub(crate) fn collect_settings(out: &mut Vec<$crate::meta::Setting>) {
                let defaults = Self::default();
                $(
                    out.push($crate::meta::Setting::build::<$ty>(
                        concat!($prefix, stringify!($field)),
                        stringify!($field),
                        $help,
                        $crate::value::SettingValue::to_value(&defaults.$field),
                        $meta,
                    ));
                )*
                $($( <$Gty>::collect_settings(out); )*)?
            }

            $(
                /// Appends one entry per group, in declaration order.
                pub(crate) fn collect_groups(out: &mut Vec<$crate::meta::Group>) {
                    $( out.push($crate::meta::Group { key: stringify!($gfield), help: <$Gty>::HELP.trim() }); )*
                }
            )?
        }

        impl $crate::schema::Fields for $Name {
            fn get_field(&self, name: &str) -> Option<serde_yaml_ng::Value> {
                match name {
                    $( stringify!($field) => Some($crate::value::SettingValue::to_value(&self.$field)), )*
                    _ => None,
                }
            }

            fn set_field(
                &mut self,
                name: &str,
                value: &serde_yaml_ng::Value,
            ) -> Option<Result<serde_yaml_ng::Value, $crate::value::Mismatch>> {
                match name {
                    $(
                        stringify!($field) => Some(
                            <$ty as $crate::value::SettingValue>::from_value(value).map(|v| {
                                let canonical = $crate::value::SettingValue::to_value(&v);
                                self.$field = v;
                                canonical
                            }),
                        ),
                    )*
                    _ => None,
                }
            }

            $(
                fn child(&self, name: &str) -> Option<&dyn $crate::schema::Fields> {
                    match name {
                        $( stringify!($gfield) => Some(&self.$gfield), )*
                        _ => None,
                    }
                }

                fn child_mut(&mut self, name: &str) -> Option<&mut dyn $crate::schema::Fields> {
                    match name {
                        $( stringify!($gfield) => Some(&mut self.$gfield), )*
                        _ => None,
                    }
                }
            )?
        }
    };
}
pub(crate) use settings_struct;
