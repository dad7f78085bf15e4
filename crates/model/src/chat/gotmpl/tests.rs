//! Tests of the Go template language and Ollama's rendering rules.

use std::sync::Arc;

use serde_json::json;

use super::GoTemplate;
use crate::chat::ChatRequest;

fn template(src: &str) -> GoTemplate {
    let clock = Arc::new(|| jiff::civil::DateTime::constant(2025, 1, 31, 12, 0, 0, 0));
    GoTemplate::parse(src, clock).unwrap()
}

fn chat(messages: serde_json::Value) -> ChatRequest {
    ChatRequest {
        messages: messages.as_array().cloned().unwrap_or_default(),
        ..ChatRequest::default()
    }
}

fn render(src: &str, request: &ChatRequest) -> String {
    template(src).render(request).unwrap()
}

fn render_err(src: &str, request: &ChatRequest) -> String {
    template(src).render(request).unwrap_err()
}

fn two_turns() -> ChatRequest {
    chat(json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"}
    ]))
}

#[test]
fn messages_range_with_trim() {
    let src = "{{- range .Messages }}<{{ .Role }}>\n{{ .Content }}\n{{- end }}<assistant>";
    assert_eq!(
        render(src, &two_turns()),
        "<system>\nBe brief.<user>\nHi<assistant>\nHello<user>\nBye<assistant>"
    );
}

#[test]
fn variables_index_slice_len() {
    let src = "{{- range $i, $m := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}\
               {{- if $last }}[last:{{ $m.Content }}]{{ else }}{{ $i }},{{ end }}{{ end }}\
               {{- $x := 1 }}{{ $x = 2 }}{{ $x }}|{{ (index .Messages 1).Content }}";
    assert_eq!(render(src, &two_turns()), "0,1,2,[last:Bye]2|Hi");
}

#[test]
fn range_break_continue_else() {
    let src = "{{ range .Messages }}{{ if eq .Role \"system\" }}{{ continue }}{{ end }}\
               {{ .Content }}{{ if eq .Content \"Hello\" }}{{ break }}{{ end }};{{ end }}\
               {{ range .Tools }}tool{{ else }}no tools{{ end }}{{ range 3 }}{{ . }}{{ end }}";
    assert_eq!(render(src, &two_turns()), "Hi;Hellono tools012");
}

#[test]
fn with_else_and_else_if() {
    let src = "{{ with .System }}S={{ . }}{{ else }}none{{ end }}|\
               {{ range .Messages }}{{ if eq .Role \"user\" }}U{{ else if eq .Role \"assistant\" }}A\
               {{ else }}O{{ end }}{{ end }}|{{ with $s := .Tools }}x{{ else with .System }}w{{ end }}";
    assert_eq!(render(src, &two_turns()), "S=Be brief.|OUAU|w");
}

#[test]
fn define_template_block() {
    let src = "{{ define \"turn\" }}<{{ .Role }}:{{ .Content }}>{{ end }}\
               {{ range .Messages }}{{ template \"turn\" . }}{{ end }}\
               {{ block \"tail\" .System }}({{ . }}){{ end }}";
    assert_eq!(
        render(src, &two_turns()),
        "<system:Be brief.><user:Hi><assistant:Hello><user:Bye>(Be brief.)"
    );
}

#[test]
fn builtins_and_logic() {
    let src = "{{ and 1 0 }} {{ or 0 \"\" \"x\" }} {{ not .Tools }} {{ and .Messages .System | len }} \
               {{ print 1 2 \"a\" }} {{ printf \"%q %d %v %t %s\" \"x\" 3 1.5 true .System }} \
               {{ println \"a\" 1 }}{{ html \"<b>\" }} {{ js \"'\" }} {{ urlquery \"a b\" }} \
               {{ lt 1 2 }} {{ ne \"a\" \"b\" }} {{ ge 2.5 2 }} {{ currentDate }} {{ yesterdayDate }}";
    assert_eq!(
        render(src, &two_turns()),
        "0 x true 9 1 2a \"x\" 3 1.5 true Be brief. a 1\n&lt;b&gt; \\' a+b true true true 2025-01-31 2025-01-30"
    );
}

#[test]
fn missing_values_render_empty_and_fields_are_checked() {
    let src = "[{{ .Nothing }}][{{ .Response }}][{{ .Think }}][{{ .ThinkLevel }}]{{ .Messages }}";
    let out = render(src, &chat(json!([])));
    assert_eq!(out, "[][][false][][]");
    let err = render_err("{{ range .Messages }}{{ .Nope }}{{ end }}", &two_turns());
    assert!(err.contains("can't evaluate field Nope"), "{err}");
    let err = render_err("{{ .Messages }}{{ .Nothing.Deeper }}", &two_turns());
    assert!(err.contains("nil pointer"), "{err}");
}

#[test]
fn tool_calls_and_tools_print_as_json() {
    let mut request = chat(json!([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}
        ]},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"}
    ]));
    request.tools = Some(vec![json!({"type": "function", "function": {
        "name": "get_weather", "description": "Get weather",
        "parameters": {"type": "object", "required": ["city"],
                       "properties": {"city": {"type": "string", "description": "City"}}}}})]);
    let src = "{{ range .Tools }}{{ . }}|{{ .Function }}|{{ .Function.Name }}\
               {{ range $k, $v := .Function.Parameters.Properties }}|{{ $k }}:{{ $v.Type }}:{{ toTypeScriptType $v }}{{ end }}{{ end }}\
               {{ range .Messages }}{{ range .ToolCalls }}|{{ .Function.Name }}{{ .Function.Arguments }}{{ json .Function.Arguments }}\
               {{ range $k, $v := .Function.Arguments }}[{{ $k }}={{ $v }}]{{ end }}{{ end }}{{ if .ToolName }}|{{ .ToolName }}{{ end }}{{ end }}";
    let fun = r#"{"name":"get_weather","description":"Get weather","parameters":{"type":"object","required":["city"],"properties":{"city":{"type":"string","description":"City"}}}}"#;
    assert_eq!(
        render(src, &request),
        format!(
            r#"{{"type":"function","function":{fun}}}|{fun}|get_weather|city:string:string|get_weather{{"city":"Paris","days":2}}{{"city":"Paris","days":2}}[city=Paris][days=2]|get_weather"#
        )
    );
}

#[test]
fn legacy_template_renders_per_turn_and_stops_at_response() {
    let src = "{{ if .System }}<<SYS>>{{ .System }}<</SYS>>{{ end }}[INST] {{ .Prompt }} [/INST] {{ .Response }}</s>";
    assert_eq!(
        render(src, &two_turns()),
        "<<SYS>>Be brief.<</SYS>>[INST] Hi [/INST] Hello</s>[INST] Bye [/INST] "
    );
}

#[test]
fn suffix_fills_in_the_middle() {
    let src = "{{ if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{ else }}{{ .Prompt }}{{ end }}";
    let mut request = chat(json!([{"role": "user", "content": "def f("}]));
    assert_eq!(render(src, &request), "def f(");
    request.extra.insert("suffix".into(), json!("    return 1"));
    assert_eq!(
        render(src, &request),
        "<PRE> def f( <SUF>    return 1 <MID>"
    );
}

#[test]
fn legacy_template_without_response_gets_one_appended() {
    let src = "USER: {{ .Prompt }}\nASSISTANT: ";
    assert_eq!(
        render(src, &two_turns()),
        "USER: Hi\nASSISTANT: HelloUSER: Bye\nASSISTANT: "
    );
}

#[test]
fn thinking_flags() {
    let mut request = chat(json!([{"role": "user", "content": "q"}]));
    let src = "{{ range .Messages }}{{ end }}{{ if .IsThinkSet }}set:{{ .Think }}:{{ .ThinkLevel }}{{ else }}unset{{ end }}";
    assert_eq!(render(src, &request), "unset");
    request.extra.insert("enable_thinking".into(), json!(false));
    assert_eq!(render(src, &request), "set:false:");
    request.extra.insert("think".into(), json!("low"));
    assert_eq!(render(src, &request), "set:true:low");
}

#[test]
fn hostile_templates_are_bounded() {
    let request = two_turns();
    let err = render_err(
        "{{ define \"a\" }}{{ template \"a\" . }}{{ end }}{{ template \"a\" . }}",
        &request,
    );
    assert!(err.contains("nesting"), "{err}");
    let err = render_err("{{ range 1000000000000 }}{{ end }}", &request);
    assert!(err.contains("steps"), "{err}");
    let err = render_err(
        "{{ define \"a\" }}{{ . }}{{ . }}{{ . }}{{ . }}{{ end }}{{ define \"b\" }}{{ template \"a\" . }}{{ template \"a\" . }}{{ end }}\
         {{ range 100000000 }}{{ template \"b\" \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\" }}{{ end }}",
        &request,
    );
    assert!(err.contains("output") || err.contains("steps"), "{err}");
    assert!(render_err("{{ template \"missing\" }}", &request).contains("no such template"));
    let err = render_err(
        "{{ $x := \"ab\" }}{{ range 100 }}{{ $x = print $x $x }}{{ end }}",
        &request,
    );
    assert!(err.contains("exceed"), "{err}");
}

#[test]
fn which_names_a_template_uses() {
    let t = template("{{ with .Tools }}{{ . }}{{ end }} {{ $.System }} {{ (len .Prompt) }}");
    let names: Vec<String> = super::identifiers(&t.templates).into_iter().collect();
    assert_eq!(names, ["$", "prompt", "response", "system", "tools"]);
    assert!(!t.uses_messages);
    // Inside a named template counts too.
    let t = template("{{ define \"m\" }}{{ range .Messages }}{{ end }}{{ end }}");
    assert!(t.uses_messages);
}

#[test]
fn last_legacy_turn_stops_after_the_response() {
    let conversation = chat(json!([
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"}
    ]));
    // Inside a branch: the rest of the branch and everything after go.
    let src = "{{ if .Prompt }}<{{ .Prompt }}|{{ .Response }}>{{ else }}none{{ end }}!";
    assert_eq!(render(src, &conversation), "<q1|a1>!<q2|a2");
    // Within one pipeline, the arguments after `.Response` go.
    let src = "[{{ .Prompt }}]{{ print \"(\" .Response \")\" }}";
    assert_eq!(render(src, &conversation), "[q1](a1)[q2](a2");
    // A condition on `.Response` does not cut.
    let src = "{{ if .Response }}R{{ end }}{{ .Prompt }}:{{ .Response }};";
    assert_eq!(render(src, &conversation), "Rq1:a1;Rq2:a2");
}
