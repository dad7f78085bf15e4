// Writes crates/model/tests/fixtures/gotmpl/expected: each *.gotmpl there
// rendered by Go's own text/template for each requests/*.json, over data
// shaped as Ollama's template package builds it for templates that range
// over .Messages (messages of one role run together are merged, system
// messages joined into .System, tools as structs whose String method gives
// their JSON, tool-call arguments as maps that print as JSON). currentDate is
// pinned to 2025-01-31, as the Rust test pins its clock.
//
// Run from this directory: go run .
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"text/template/parse"
)

type Args map[string]any

func (a Args) String() string { b, _ := json.Marshal(a); return string(b) }

type Props map[string]Prop

func (p Props) String() string { b, _ := json.Marshal(p); return string(b) }

type PType []string

func (pt PType) MarshalJSON() ([]byte, error) {
	if len(pt) == 1 {
		return json.Marshal(pt[0])
	}
	return json.Marshal([]string(pt))
}
func (pt PType) String() string {
	if len(pt) == 0 {
		return ""
	}
	if len(pt) == 1 {
		return pt[0]
	}
	return fmt.Sprintf("%v", []string(pt))
}
func (pt *PType) UnmarshalJSON(d []byte) error {
	var s string
	if json.Unmarshal(d, &s) == nil {
		*pt = []string{s}
		return nil
	}
	var a []string
	err := json.Unmarshal(d, &a)
	*pt = a
	return err
}

type Prop struct {
	AnyOf       []Prop          `json:"anyOf,omitempty"`
	Type        PType           `json:"type,omitempty"`
	Items       any             `json:"items,omitempty"`
	Description string          `json:"description,omitempty"`
	Enum        []any           `json:"enum,omitempty"`
	Properties  map[string]Prop `json:"properties,omitempty"`
	Required    []string        `json:"required,omitempty"`
}

type Params struct {
	Type       string   `json:"type"`
	Defs       any      `json:"$defs,omitempty"`
	Items      any      `json:"items,omitempty"`
	Required   []string `json:"required,omitempty"`
	Properties Props    `json:"properties"`
}

func (t Params) String() string { b, _ := json.Marshal(t); return string(b) }

type Fn struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Parameters  Params `json:"parameters"`
}

func (t Fn) String() string { b, _ := json.Marshal(t); return string(b) }

type Tool struct {
	Type     string `json:"type"`
	Items    any    `json:"items,omitempty"`
	Function Fn     `json:"function"`
}

func (t Tool) String() string { b, _ := json.Marshal(t); return string(b) }

type Tools []Tool

func (t Tools) String() string { b, _ := json.Marshal(t); return string(b) }

type CallFn struct {
	Index     int
	Name      string
	Arguments Args
}
type Call struct {
	ID       string
	Function CallFn
}
type Msg struct {
	Role       string
	Content    string
	Thinking   string
	Images     []string
	ToolCalls  []Call
	ToolName   string
	ToolCallID string
}

type inMsg struct {
	Role      string `json:"role"`
	Content   string `json:"content"`
	Thinking  string `json:"thinking"`
	ToolName  string `json:"tool_name"`
	ToolCalls []struct {
		Function struct {
			Index     int            `json:"index"`
			Name      string         `json:"name"`
			Arguments map[string]any `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
}

type request struct {
	Messages []inMsg `json:"messages"`
	Tools    []Tool  `json:"tools"`
	Think    *bool   `json:"think"`
}

var funcs = template.FuncMap{
	"json":        func(v any) string { b, _ := json.Marshal(v); return string(b) },
	"currentDate": func(args ...string) string { return "2025-01-31" },
}

func idents(n parse.Node) []string {
	switch n := n.(type) {
	case *parse.ListNode:
		var out []string
		for _, c := range n.Nodes {
			out = append(out, idents(c)...)
		}
		return out
	case *parse.ActionNode:
		return idents(n.Pipe)
	case *parse.TemplateNode:
		if n.Pipe == nil {
			return nil
		}
		return idents(n.Pipe)
	case *parse.IfNode:
		return idents(&n.BranchNode)
	case *parse.RangeNode:
		return idents(&n.BranchNode)
	case *parse.WithNode:
		return idents(&n.BranchNode)
	case *parse.BranchNode:
		out := idents(n.Pipe)
		out = append(out, idents(n.List)...)
		if n.ElseList != nil {
			out = append(out, idents(n.ElseList)...)
		}
		return out
	case *parse.PipeNode:
		var out []string
		for _, c := range n.Cmds {
			for _, a := range c.Args {
				out = append(out, idents(a)...)
			}
		}
		return out
	case *parse.FieldNode:
		return n.Ident
	case *parse.VariableNode:
		return n.Ident
	}
	return nil
}

const fixtures = "../../crates/model/tests/fixtures/gotmpl"

func main() {
	templates, _ := filepath.Glob(filepath.Join(fixtures, "*.gotmpl"))
	requests, _ := filepath.Glob(filepath.Join(fixtures, "requests", "*.json"))
	for _, t := range templates {
		name := strings.TrimSuffix(filepath.Base(t), ".gotmpl")
		if name == "legacy" {
			continue
		}
		for _, r := range requests {
			out, err := render(t, r)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s with %s: %v\n", t, r, err)
				os.Exit(1)
			}
			req := strings.TrimSuffix(filepath.Base(r), ".json")
			path := filepath.Join(fixtures, "expected", name+"."+req+".txt")
			if err := os.WriteFile(path, out, 0o644); err != nil {
				panic(err)
			}
		}
	}
}

func render(templatePath, requestPath string) ([]byte, error) {
	src, err := os.ReadFile(templatePath)
	if err != nil {
		return nil, err
	}
	reqb, err := os.ReadFile(requestPath)
	if err != nil {
		return nil, err
	}
	var req request
	if err := json.Unmarshal(reqb, &req); err != nil {
		return nil, err
	}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(string(src))
	if err != nil {
		return nil, err
	}
	vars := map[string]bool{}
	for _, t := range tmpl.Templates() {
		for _, n := range t.Root.Nodes {
			for _, i := range idents(n) {
				vars[strings.ToLower(i)] = true
			}
		}
	}
	think, set := false, false
	if req.Think != nil {
		think, set = *req.Think, true
	}
	var sys []string
	var msgs []*Msg
	for _, m := range req.Messages {
		if m.Role == "system" {
			sys = append(sys, m.Content)
		}
		if len(msgs) > 0 && msgs[len(msgs)-1].Role == m.Role && m.Role != "tool" {
			msgs[len(msgs)-1].Content += "\n\n" + m.Content
			continue
		}
		var calls []Call
		for _, c := range m.ToolCalls {
			calls = append(calls, Call{Function: CallFn{Index: c.Function.Index, Name: c.Function.Name, Arguments: Args(c.Function.Arguments)}})
		}
		msgs = append(msgs, &Msg{Role: m.Role, Content: m.Content, Thinking: m.Thinking, ToolCalls: calls, ToolName: m.ToolName})
	}
	var tools Tools
	if req.Tools != nil {
		tools = Tools(req.Tools)
	}
	var b bytes.Buffer
	if !vars["messages"] {
		return nil, fmt.Errorf("only templates that range over .Messages are rendered here")
	}
	err = tmpl.Execute(&b, map[string]any{"System": strings.Join(sys, "\n\n"), "Messages": msgs, "Tools": tools, "Response": "", "Think": think, "ThinkLevel": "", "IsThinkSet": set})
	return b.Bytes(), err
}
