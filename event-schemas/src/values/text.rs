//! Bounded free text.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::*;

/// Free text bounded to `N` characters, trimmed, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text<const N: usize>(String);

impl<const N: usize> Text<N> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const N: usize> FromStr for Text<N> {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(ValueError::new("text", "must not be empty"));
        }
        if t.chars().count() > N {
            return Err(ValueError::new(
                "text",
                format!("longer than {N} characters"),
            ));
        }
        Ok(Text(t.to_string()))
    }
}

impl<const N: usize> TryFrom<String> for Text<N> {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl<const N: usize> From<Text<N>> for String {
    fn from(t: Text<N>) -> String {
        t.0
    }
}

impl<const N: usize> fmt::Display for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const N: usize> JsonSchema for Text<N> {
    fn schema_name() -> Cow<'static, str> {
        format!("Text{N}").into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "minLength": 1, "maxLength": N })
    }
}

/// A short note (reason, comment): 1 to 500 characters.
pub type Note = Text<500>;
