//! The tool and thinking fields the APIs share: tool definitions checked,
//! tool calls of earlier turns in the shape templates read, `tool_choice`
//! and `reasoning_effort` (OpenAI's chat and Responses APIs).

use model::chat::output::ToolChoice;
use serde_json::Value;

use crate::error::{ApiError, OpenAiError};
use crate::request::Think;

/// A tool definition must be a function with a name (Ollama's and OpenAI's
/// shape, `{"type": "function", "function": {"name", "parameters"}}`).
pub fn check_tool(i: usize, tool: &Value) -> Result<(), ApiError> {
    let kind = tool
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("function");
    if kind != "function" {
        return Err(ApiError::bad_request(format!(
            "tools[{i}] has type '{kind}': only function tools are supported"
        )));
    }
    let name = tool
        .get("function")
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str);
    if name.is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(format!(
            "tools[{i}].function.name is required"
        )));
    }
    Ok(())
}

/// Tool calls as chat templates read them: OpenAI's shape, with arguments
/// as an object (a JSON string of one is parsed; templates print objects
/// with `tojson` and index them) and `type: function`.
pub fn template_tool_calls(calls: Vec<Value>) -> Vec<Value> {
    calls
        .into_iter()
        .map(|mut call| {
            if let Some(Value::String(args)) = call.get("function").and_then(|f| f.get("arguments"))
                && let Ok(parsed @ Value::Object(_)) = serde_json::from_str::<Value>(args)
            {
                call["function"]["arguments"] = parsed;
            }
            if call.get("type").is_none() && call.is_object() {
                call["type"] = "function".into();
            }
            call
        })
        .collect()
}

/// `tool_choice`: whether the answer is parsed for calls (`auto`, the
/// default with tools, or a forced call; not `none`), and which call the
/// grammar allows. Takes chat's `{"type": "function", "function": {"name"}}`
/// and the Responses API's `{"type": "function", "name"}`.
pub fn tool_choice(
    choice: Option<&Value>,
    has_tools: bool,
) -> Result<(bool, ToolChoice), OpenAiError> {
    let named = |v: &Value| {
        v.get("function")
            .and_then(|f| f.get("name"))
            .or_else(|| v.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let choice = match choice {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(s)) if s == "auto" => ToolChoice::Auto,
        Some(Value::String(s)) if s == "none" => return Ok((false, ToolChoice::Auto)),
        Some(Value::String(s)) if s == "required" => ToolChoice::Required,
        Some(v @ Value::Object(_)) if named(v).is_some() => {
            ToolChoice::Function(named(v).unwrap_or_default())
        }
        Some(other) => {
            return Err(OpenAiError::invalid_param(
                "tool_choice",
                format!(
                    "tool_choice {other} is invalid: use 'auto', 'none', 'required' or \
                     {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"
                ),
            ));
        }
    };
    if !has_tools && choice != ToolChoice::Auto {
        return Err(OpenAiError::invalid_param(
            "tool_choice",
            "tool_choice forces a call, but no tools were given",
        ));
    }
    Ok((has_tools, choice))
}

/// The request's tools, each checked.
pub fn checked_tools(tools: Option<Vec<Value>>) -> Result<Vec<Value>, OpenAiError> {
    let tools = tools.unwrap_or_default();
    for (i, tool) in tools.iter().enumerate() {
        check_tool(i, tool).map_err(|e| {
            let mut e = OpenAiError::from(e);
            e.param = Some(format!("tools[{i}]"));
            e
        })?;
    }
    Ok(tools)
}

/// `reasoning_effort`.
pub fn reasoning_effort(effort: Option<&str>) -> Result<Think, OpenAiError> {
    match effort {
        None => Ok(Think::Default),
        Some(level) => crate::request::think_level(level).map_err(|e| {
            let mut e = OpenAiError::from(e);
            e.param = Some("reasoning_effort".into());
            e
        }),
    }
}
