//! JSON Schema validation (draft 2020-12, 2019-09, 7, 6 and 4, detected from `$schema`).
//!
//! A schema without `$schema` is read as draft 7, as Confluent's registry and serializers read
//! it (so tuple `items: [...]` means what it meant there), unless it uses a keyword only the
//! 2019-09/2020-12 drafts have (`prefixItems`, `$defs`, `unevaluatedProperties`, …): then as
//! 2020-12, which is what its author meant.
//!
//! A validator is compiled once per schema id and shared; format assertions (`date-time`,
//! `email`, …) are enabled because producers rely on them, as Confluent's JSON Schema serializer
//! does. Remote `$ref`s are not fetched: a schema must be self-contained.

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::ValueError;

/// Backtracking steps one `pattern` match may take; beyond it the value is refused.
const PATTERN_BACKTRACK_LIMIT: usize = 100_000;

/// A compiled JSON Schema.
#[derive(Debug)]
pub struct JsonSchemaValidator {
    validator: jsonschema::Validator,
}

impl JsonSchemaValidator {
    /// Parses and compiles a JSON Schema given as text.
    pub fn compile(schema_json: &str) -> Result<Self, String> {
        let schema: Value = serde_json::from_str(schema_json).map_err(|e| format!("schema is not JSON: {e}"))?;
        let mut options = jsonschema::options();
        if schema.get("$schema").is_none() {
            options = options.with_draft(if uses_2019_keywords(&schema, 0) {
                jsonschema::Draft::Draft202012
            } else {
                jsonschema::Draft::Draft7
            });
        }
        let validator = options
            .should_validate_formats(true)
            // Patterns come from whoever registers a schema: bound the backtracking regex engine
            // (ECMA-262 patterns need look-around, so the linear-time engine is not enough).
            .with_pattern_options(
                jsonschema::PatternOptions::fancy_regex().backtrack_limit(PATTERN_BACKTRACK_LIMIT).size_limit(1 << 20),
            )
            .build(&schema)
            .map_err(|e| format!("invalid JSON Schema: {e}"))?;
        Ok(Self { validator })
    }

    /// Checks an event; the error points at the first offending value.
    ///
    /// For a missing required property the pointer names the property itself, and for an
    /// unexpected one (`additionalProperties: false`) the unexpected key, so a client can tell
    /// which field to fix without parsing the message.
    pub fn validate(&self, event: &Value) -> Result<(), ValueError> {
        let Some(error) = self.validator.iter_errors(event).next() else { return Ok(()) };
        let mut pointer = error.instance_path().as_str().to_owned();
        match error.kind() {
            ValidationErrorKind::Required { property: Value::String(name) } => push_token(&mut pointer, name),
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                if let Some(name) = unexpected.first() {
                    push_token(&mut pointer, name);
                }
            }
            _ => {}
        }
        Err(ValueError { pointer, message: error.to_string() })
    }
}

/// Whether a schema uses a keyword that only drafts 2019-09 and later define.
fn uses_2019_keywords(schema: &Value, depth: usize) -> bool {
    const KEYWORDS: [&str; 9] = [
        "prefixItems",
        "$defs",
        "unevaluatedProperties",
        "unevaluatedItems",
        "dependentRequired",
        "dependentSchemas",
        "$anchor",
        "$dynamicRef",
        "$recursiveRef",
    ];
    if depth > 64 {
        return false;
    }
    match schema {
        Value::Object(map) => {
            map.keys().any(|k| KEYWORDS.contains(&k.as_str())) || map.values().any(|v| uses_2019_keywords(v, depth + 1))
        }
        Value::Array(items) => items.iter().any(|v| uses_2019_keywords(v, depth + 1)),
        _ => false,
    }
}

fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    pointer.push_str(&token.replace('~', "~0").replace('/', "~1"));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn without_schema_a_schema_is_draft_7_unless_it_uses_newer_keywords() {
        let tuple =
            JsonSchemaValidator::compile(r#"{"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}"#)
                .expect("tuple items are draft 7");
        assert!(tuple.validate(&json!(["a", 1])).is_ok());
        assert_eq!(tuple.validate(&json!(["a", "b"])).unwrap_err().pointer, "/1");
        let prefix =
            JsonSchemaValidator::compile(r#"{"type": "array", "prefixItems": [{"type": "string"}], "items": false}"#)
                .expect("prefixItems are 2020-12");
        assert!(prefix.validate(&json!(["a"])).is_ok());
        assert!(prefix.validate(&json!([1])).is_err() && prefix.validate(&json!(["a", "b"])).is_err());
        let booleans = JsonSchemaValidator::compile(r#"{"properties": {"anything": true, "nothing": false}}"#).unwrap();
        assert!(booleans.validate(&json!({"anything": [1]})).is_ok());
        assert_eq!(booleans.validate(&json!({"nothing": 1})).unwrap_err().pointer, "/nothing");
        assert!(JsonSchemaValidator::compile("true").unwrap().validate(&json!({"x": 1})).is_ok());
    }

    fn schema(draft: &str) -> JsonSchemaValidator {
        JsonSchemaValidator::compile(
            &json!({
                "$schema": draft,
                "type": "object",
                "required": ["order_id", "total_cents"],
                "additionalProperties": false,
                "properties": {
                    "order_id": {"type": "string"},
                    "total_cents": {"type": "integer", "minimum": 0},
                    "email": {"type": "string", "format": "email"},
                    "items": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer"}}}}
                }
            })
            .to_string(),
        )
        .unwrap()
    }

    #[test]
    fn points_at_the_offending_value_in_both_drafts() {
        for draft in ["https://json-schema.org/draft/2020-12/schema", "http://json-schema.org/draft-07/schema#"] {
            let s = schema(draft);
            assert!(s.validate(&json!({"order_id": "a", "total_cents": 1})).is_ok());
            let cases = [
                (json!({"order_id": "a", "total_cents": -1}), "/total_cents"),
                (json!({"order_id": "a"}), "/total_cents"),
                (json!({"order_id": "a", "total_cents": 1, "colour": "red"}), "/colour"),
                (json!({"order_id": "a", "total_cents": 1, "items": [{"qty": 1}, {"qty": "x"}]}), "/items/1/qty"),
                (json!({"order_id": "a", "total_cents": 1, "email": "not-an-address"}), "/email"),
            ];
            for (event, pointer) in cases {
                let err = s.validate(&event).unwrap_err();
                assert_eq!(err.pointer, pointer, "{draft}: {}", err.message);
            }
        }
    }

    #[test]
    fn refuses_invalid_schemas() {
        assert!(JsonSchemaValidator::compile("{").is_err());
        assert!(JsonSchemaValidator::compile(r#"{"type": 12}"#).is_err());
    }

    #[test]
    fn recursive_references_compile_and_validate_in_bounded_time() {
        let cases = [
            (json!({"$ref": "#"}), json!({"a": 1})),
            (json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}), json!(1)),
            (json!({"type": "object", "properties": {"next": {"$ref": "#"}}}), json!({"next": {"next": {"next": 1}}})),
            (
                json!({"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"n": {"$ref": "#/definitions/n"}}, "$ref": "#/definitions/n"}),
                json!(true),
            ),
        ];
        for (schema, instance) in cases {
            // Compiling may refuse a reference cycle; if it compiles, validating must end.
            if let Ok(validator) = JsonSchemaValidator::compile(&schema.to_string()) {
                let _ = validator.validate(&instance);
            }
        }
    }

    #[test]
    fn catastrophic_patterns_are_cut_off() {
        let validator = JsonSchemaValidator::compile(r#"{"type": "string", "pattern": "^(a+)+(?=b)"}"#).unwrap();
        let hostile = format!("{}!", "a".repeat(64));
        assert!(validator.validate(&json!(hostile)).is_err());
        assert!(validator.validate(&json!("aaab")).is_ok());
    }
}
