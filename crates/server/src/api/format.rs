//! Structured-output fields of both APIs, read into the engine's
//! [`Constraint`]: Ollama's `format`, OpenAI's `response_format`, and
//! llama-server's `grammar` (GBNF) and `json_schema`. Only the shape is
//! checked here; whether a schema or grammar compiles is decided when the job
//! starts, still before any response (a 400 naming the problem). Nothing is
//! added to the prompt: the constraint alone shapes the output, as in Ollama.

use engine::{Constraint, Grammar};
use serde_json::Value;

use crate::error::ApiError;

/// Ollama's `format`: `"json"` (any JSON object) or a JSON Schema object;
/// absent, `null` or `""` for free text.
pub fn ollama(format: Option<&Value>) -> Result<Option<Constraint>, ApiError> {
    match format {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "json" => Ok(Some(Constraint::new(Grammar::JsonObject))),
        Some(Value::Object(_)) => Ok(Some(Constraint::new(Grammar::JsonSchema(
            format.cloned().unwrap_or_default(),
        )))),
        Some(other) => Err(ApiError::bad_request(format!(
            "format {other} is invalid: use \"json\" or a JSON Schema object"
        ))),
    }
}

/// Anthropic's `output_config.format`: `{"type": "json_schema", "schema":
/// {...}}`; absent or `null` for free text. The error says what is wrong.
pub fn anthropic(format: Option<&Value>) -> Result<Option<Constraint>, String> {
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => match format.get("schema") {
            Some(schema @ (Value::Object(_) | Value::Bool(_))) => {
                Ok(Some(Constraint::new(Grammar::JsonSchema(schema.clone()))))
            }
            _ => Err("output_config.format.schema must be a JSON Schema object".to_owned()),
        },
        other => Err(format!(
            "output_config.format.type {} is invalid: use json_schema",
            other.map_or_else(|| "(missing)".to_owned(), |t| format!("'{t}'"))
        )),
    }
}

/// The OpenAI-side structured-output fields of one request.
#[derive(Debug, Default)]
pub struct OpenAiFormat<'a> {
    /// `response_format`.
    pub response_format: Option<&'a Value>,
    /// llama-server's `grammar`: GBNF text.
    pub grammar: Option<&'a Value>,
    /// llama-server's `json_schema`: a JSON Schema.
    pub json_schema: Option<&'a Value>,
}

impl OpenAiFormat<'_> {
    /// The constraint these fields ask for, or the field at fault (for
    /// OpenAI's `param`) and what is wrong with it. At most one may ask for
    /// a constraint.
    pub fn constraint(&self) -> Result<Option<Constraint>, (&'static str, String)> {
        let mut found: Vec<(&'static str, Constraint)> = Vec::new();
        if let Some(rf) = self.response_format.filter(|v| !v.is_null())
            && let Some(c) = response_format(rf).map_err(|e| ("response_format", e))?
        {
            found.push(("response_format", c));
        }
        match self.grammar {
            None | Some(Value::Null) => {}
            Some(Value::String(g)) if g.trim().is_empty() => {}
            Some(Value::String(g)) => {
                found.push(("grammar", Constraint::new(Grammar::Gbnf(g.clone()))));
            }
            Some(_) => return Err(("grammar", "grammar must be a string of GBNF".to_owned())),
        }
        match self.json_schema {
            None | Some(Value::Null) => {}
            Some(s @ (Value::Object(_) | Value::Bool(_))) => {
                found.push((
                    "json_schema",
                    Constraint::new(Grammar::JsonSchema(s.clone())),
                ));
            }
            Some(_) => {
                return Err((
                    "json_schema",
                    "json_schema must be a JSON Schema object".to_owned(),
                ));
            }
        }
        if found.len() > 1 {
            let names: Vec<&str> = found.iter().map(|(n, _)| *n).collect();
            return Err((
                found[1].0,
                format!(
                    "give only one of {}: each constrains the output",
                    names.join(" and ")
                ),
            ));
        }
        Ok(found.pop().map(|(_, c)| c))
    }
}

/// `response_format`: `{"type": "text"}`, `{"type": "json_object"}` or
/// `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`.
/// As llama-server does, `json_object` may carry a `schema` too. A
/// `json_schema` without `schema` allows any JSON value.
fn response_format(rf: &Value) -> Result<Option<Constraint>, String> {
    let Some(obj) = rf.as_object() else {
        return Err("response_format must be an object with a 'type'".to_owned());
    };
    let schema_of = |v: Option<&Value>| -> Result<Option<Value>, String> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(s @ (Value::Object(_) | Value::Bool(_))) => Ok(Some(s.clone())),
            Some(_) => Err("the schema must be a JSON Schema object".to_owned()),
        }
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Constraint::new(match schema_of(obj.get("schema"))? {
            Some(schema) => Grammar::JsonSchema(schema),
            None => Grammar::JsonObject,
        }))),
        Some("json_schema") => {
            let spec = match obj.get("json_schema") {
                Some(Value::Object(spec)) => spec,
                // llama-server's shorthand: the schema beside the type.
                None if obj.contains_key("schema") => obj,
                _ => {
                    return Err(
                        "response_format of type 'json_schema' needs a 'json_schema' object"
                            .to_owned(),
                    );
                }
            };
            if let Some(name) = spec.get("name").filter(|n| !n.is_null()) {
                let ok = name.as_str().is_some_and(|n| {
                    !n.is_empty()
                        && n.len() <= 64
                        && n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
                if !ok {
                    return Err(format!(
                        "json_schema.name {name} is invalid: use up to 64 letters, digits, '_' or '-'"
                    ));
                }
            }
            let schema = schema_of(spec.get("schema"))?
                .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
            Ok(Some(Constraint::new(Grammar::JsonSchema(schema))))
        }
        Some(other) => Err(format!(
            "response_format of type '{other}' is invalid: use text, json_object or json_schema"
        )),
        None => Err("response_format needs a 'type'".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ollama_format_values() {
        assert_eq!(ollama(None).unwrap(), None);
        assert_eq!(ollama(Some(&json!(""))).unwrap(), None);
        assert_eq!(
            ollama(Some(&json!("json"))).unwrap().unwrap().grammar,
            Grammar::JsonObject
        );
        let schema = json!({"type": "object"});
        assert_eq!(
            ollama(Some(&schema)).unwrap().unwrap().grammar,
            Grammar::JsonSchema(schema.clone())
        );
        for bad in [json!("yaml"), json!(3), json!(["json"])] {
            assert_eq!(ollama(Some(&bad)).unwrap_err().status, 400);
        }
    }

    #[test]
    fn openai_fields() {
        let of = |rf: Value| {
            OpenAiFormat {
                response_format: Some(&rf),
                ..OpenAiFormat::default()
            }
            .constraint()
        };
        assert_eq!(of(json!({"type": "text"})).unwrap(), None);
        assert_eq!(
            of(json!({"type": "json_object"})).unwrap().unwrap().grammar,
            Grammar::JsonObject
        );
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let rf = json!({"type": "json_schema", "json_schema": {"name": "a_1", "schema": schema, "strict": true}});
        assert_eq!(
            of(rf).unwrap().unwrap().grammar,
            Grammar::JsonSchema(schema.clone())
        );
        for bad in [
            json!({"type": "xml"}),
            json!({}),
            json!("json_object"),
            json!({"type": "json_schema"}),
            json!({"type": "json_schema", "json_schema": {"name": "has space", "schema": {}}}),
            json!({"type": "json_schema", "json_schema": {"schema": 5}}),
        ] {
            let (param, _) = of(bad.clone()).unwrap_err();
            assert_eq!(param, "response_format", "{bad}");
        }
        let grammar = json!("root ::= \"a\"");
        let both = OpenAiFormat {
            response_format: Some(&json!({"type": "json_object"})),
            grammar: Some(&grammar),
            json_schema: None,
        };
        assert_eq!(both.constraint().unwrap_err().0, "grammar");
        let gbnf = OpenAiFormat {
            grammar: Some(&grammar),
            ..OpenAiFormat::default()
        };
        assert_eq!(
            gbnf.constraint().unwrap().unwrap().grammar,
            Grammar::Gbnf("root ::= \"a\"".to_owned())
        );
    }
}
