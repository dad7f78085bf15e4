// A small Markdown renderer and code highlighter for model answers, written
// for this page (no dependencies). It covers what chat models write:
// headings, paragraphs, emphasis, inline code, fenced code blocks (an
// unclosed fence, as in an answer still streaming, runs to the end), lists
// (nested by indentation), block quotes, tables, rules and links.
//
// Safety: every piece of the model's text is HTML-escaped before any markup
// is added, and links are kept only for http(s) and mailto targets, so an
// answer cannot inject markup or script (the page's CSP forbids inline
// script besides).
"use strict";

(function () {
  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escape = (s) => String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);

  // ---- inline -------------------------------------------------------------

  // Emphasis, links and strike-through over text that is already escaped.
  function spans(escaped) {
    return escaped
      .replace(/\[([^\]\n]+)\]\(((?:https?:|mailto:)[^\s()]+)\)/g,
        '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>')
      .replace(/\*\*(?=\S)([^*]*?\S)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^\w])__(?=\S)([^_]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
      .replace(/(^|[^*\w])\*(?=[^\s*])([^*\n]*?[^\s*])\*(?!\*)/g, "$1<em>$2</em>")
      .replace(/(^|[^\w])_(?=[^\s_])([^_\n]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>")
      .replace(/~~(?=\S)([^~]*?\S)~~/g, "<del>$1</del>");
  }

  // A line of inline Markdown: code spans first (nothing inside them is
  // markup), then the rest.
  function inline(text) {
    let out = "";
    let rest = text;
    for (;;) {
      const open = rest.match(/`+/);
      if (!open) break;
      const ticks = open[0];
      const start = open.index + ticks.length;
      const close = rest.indexOf(ticks, start);
      if (close < 0) break;
      out += spans(escape(rest.slice(0, open.index)));
      out += "<code>" + escape(rest.slice(start, close).trim()) + "</code>";
      rest = rest.slice(close + ticks.length);
    }
    return out + spans(escape(rest));
  }

  // ---- highlighting -------------------------------------------------------

  const words = (s) => new Set(s.split(" "));
  const C_LIKE = "if else for while do switch case default break continue return goto " +
    "struct enum union typedef const static extern inline void int long short char float " +
    "double unsigned signed bool true false sizeof class public private protected new " +
    "delete this virtual override template typename namespace using try catch throw " +
    "final abstract interface extends implements import package null nullptr auto var " +
    "string boolean byte";
  const LANGS = {
    js: {
      kw: words("const let var function return if else for while do switch case default " +
        "break continue new delete typeof instanceof in of class extends super this null " +
        "undefined true false async await yield import export from try catch finally " +
        "throw void static get set interface type enum implements readonly as"),
      line: "//", block: true, strings: "\"'`",
    },
    py: {
      kw: words("def return if elif else for while in not and or is None True False " +
        "class import from as with try except finally raise lambda yield pass break " +
        "continue global nonlocal assert del async await self print"),
      line: "#", block: false, strings: "\"'",
    },
    rust: {
      kw: words("fn let mut const static if else match for while loop in return break " +
        "continue struct enum impl trait pub use mod crate self Self super where as ref " +
        "move async await dyn unsafe type true false Some None Ok Err extern"),
      line: "//", block: true, strings: "\"",
    },
    go: {
      kw: words("func var const type struct interface map chan if else for range switch " +
        "case default return break continue go defer select package import nil true " +
        "false make new len append error string int bool"),
      line: "//", block: true, strings: "\"`",
    },
    c: { kw: words(C_LIKE), line: "//", block: true, strings: "\"'" },
    sh: {
      kw: words("if then else elif fi for in do done while until case esac function " +
        "return exit export local echo cd set unset readonly source"),
      line: "#", block: false, strings: "\"'",
    },
    sql: {
      kw: words("select from where and or not insert into values update set delete " +
        "create table drop alter join left right inner outer on as group by order " +
        "having limit null is in primary key SELECT FROM WHERE AND OR NOT INSERT INTO " +
        "VALUES UPDATE SET DELETE CREATE TABLE DROP ALTER JOIN LEFT RIGHT INNER OUTER " +
        "ON AS GROUP BY ORDER HAVING LIMIT NULL IS IN PRIMARY KEY"),
      line: "--", block: true, strings: "'\"",
    },
    json: { kw: words("true false null"), line: "", block: false, strings: "\"" },
  };
  const ALIASES = {
    javascript: "js", ts: "js", typescript: "js", jsx: "js", tsx: "js", mjs: "js",
    python: "py", py3: "py", rs: "rust", golang: "go", cpp: "c", "c++": "c", h: "c",
    hpp: "c", cc: "c", java: "c", cs: "c", csharp: "c", kotlin: "c", kt: "c",
    swift: "c", bash: "sh", shell: "sh", zsh: "sh", console: "sh", shellscript: "sh",
  };

  const reEscape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

  // One regular expression per language: comments, strings, numbers, words.
  function tokenizer(lang) {
    const parts = [];
    if (lang.line) parts.push(reEscape(lang.line) + "[^\\n]*");
    if (lang.block) parts.push("/\\*[\\s\\S]*?(?:\\*/|$)");
    const comment = parts.length ? "(" + parts.join("|") + ")" : "($^)";
    const strings = lang.strings.split("").map((q) => {
      const e = reEscape(q);
      return q === "`"
        ? "`[^`]*`?"
        : e + "(?:\\\\[\\s\\S]|[^\\\\\\n" + e + "])*" + e + "?";
    });
    return new RegExp(comment + "|(" + strings.join("|") + ")" +
      "|(\\b(?:0x[\\da-fA-F_]+|\\d[\\d_]*(?:\\.\\d+)?(?:[eE][+-]?\\d+)?)\\b)" +
      "|([A-Za-z_][\\w]*)", "g");
  }
  const TOKENIZERS = {};

  // `code` as HTML with `<span class="tok-…">` around comments, strings,
  // numbers and keywords of `name`'s language (plain escaped text for a
  // language it does not know).
  function highlight(code, name) {
    const key = ALIASES[(name || "").toLowerCase()] || (name || "").toLowerCase();
    const lang = LANGS[key];
    if (!lang) return escape(code);
    const re = TOKENIZERS[key] || (TOKENIZERS[key] = tokenizer(lang));
    re.lastIndex = 0;
    let out = "";
    let last = 0;
    let m;
    while ((m = re.exec(code)) !== null) {
      if (m[0] === "") { re.lastIndex++; continue; }
      out += escape(code.slice(last, m.index));
      const text = escape(m[0]);
      if (m[1] !== undefined) out += '<span class="tok-comment">' + text + "</span>";
      else if (m[2] !== undefined) out += '<span class="tok-string">' + text + "</span>";
      else if (m[3] !== undefined) out += '<span class="tok-number">' + text + "</span>";
      else if (lang.kw.has(m[4])) out += '<span class="tok-keyword">' + text + "</span>";
      else out += text;
      last = m.index + m[0].length;
    }
    return out + escape(code.slice(last));
  }

  function codeBlock(code, lang) {
    const label = lang ? escape(lang) : "text";
    const cls = lang ? ' class="lang-' + escape(lang.toLowerCase()) + '"' : "";
    return '<div class="code"><div class="code-head"><span>' + label +
      '</span><button type="button" class="copy-code">Copy</button></div><pre><code' +
      cls + ">" + highlight(code, lang) + "</code></pre></div>";
  }

  // ---- blocks -------------------------------------------------------------

  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
  const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
  const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const QUOTE = /^ {0,3}> ?(.*)$/;
  const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

  const indentOf = (line) => line.match(/^\s*/)[0].replace(/\t/g, "    ").length;
  const startsBlock = (line) => FENCE.test(line) || HEADING.test(line) ||
    RULE.test(line) || ITEM.test(line) || QUOTE.test(line);

  function cells(line) {
    let s = line.trim();
    if (s.startsWith("|")) s = s.slice(1);
    if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
    return s.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
  }

  function table(lines, i) {
    const head = cells(lines[i]);
    const align = cells(lines[i + 1]).map((c) =>
      c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : "");
    const cell = (tag, text, k) => "<" + tag + (align[k] ? ' class="align-' + align[k] + '"' : "") +
      ">" + inline(text) + "</" + tag + ">";
    let html = '<div class="table"><table><thead><tr>' +
      head.map((c, k) => cell("th", c, k)).join("") + "</tr></thead><tbody>";
    i += 2;
    while (i < lines.length && lines[i].includes("|") && lines[i].trim()) {
      const row = cells(lines[i]);
      html += "<tr>" + head.map((_, k) => cell("td", row[k] || "", k)).join("") + "</tr>";
      i++;
    }
    return [html + "</tbody></table></div>", i];
  }

  function list(lines, i) {
    const first = lines[i].match(ITEM);
    const base = indentOf(first[1]);
    const ordered = /\d/.test(first[2]);
    const start = ordered ? parseInt(first[2], 10) : 1;
    const items = [];
    let loose = false;
    while (i < lines.length) {
      const m = lines[i].match(ITEM);
      if (!m || indentOf(m[1]) !== base || /\d/.test(m[2]) !== ordered) break;
      const body = [m[3]];
      const width = base + m[2].length + 1;
      i++;
      while (i < lines.length) {
        const line = lines[i];
        if (!line.trim()) {
          // A blank line continues the item when indented text follows.
          const next = lines[i + 1];
          if (next !== undefined && next.trim() && indentOf(next) > base) {
            body.push("");
            loose = true;
            i++;
            continue;
          }
          if (next !== undefined && ITEM.test(next) && indentOf(next) === base) loose = true;
          break;
        }
        if (indentOf(line) > base) {
          body.push(line.replace(new RegExp("^\\s{0," + width + "}"), ""));
          i++;
        } else if (!startsBlock(line) && body[body.length - 1] !== "") {
          body.push(line); // a lazy continuation of the item's paragraph
          i++;
        } else break;
      }
      items.push(body);
      while (i < lines.length && !lines[i].trim() && lines[i + 1] !== undefined &&
        ITEM.test(lines[i + 1]) && indentOf(lines[i + 1]) === base) i++;
    }
    const tag = ordered ? "ol" : "ul";
    const attr = ordered && start !== 1 ? ' start="' + start + '"' : "";
    const html = items.map((body) => {
      const inner = blocks(body);
      const tight = !loose && inner.startsWith("<p>") && inner.indexOf("<p>", 3) < 0;
      return "<li>" + (tight ? inner.replace(/^<p>([\s\S]*?)<\/p>/, "$1") : inner) + "</li>";
    }).join("");
    return ["<" + tag + attr + ">" + html + "</" + tag + ">", i];
  }

  function blocks(lines) {
    let html = "";
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if (!line.trim()) { i++; continue; }
      if ((m = line.match(FENCE))) {
        const fence = m[1];
        const body = [];
        i++;
        while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
        i++;
        html += codeBlock(body.join("\n"), m[2]);
      } else if ((m = line.match(HEADING))) {
        const level = m[1].length;
        html += "<h" + level + ">" + inline(m[2]) + "</h" + level + ">";
        i++;
      } else if (RULE.test(line)) {
        html += "<hr>";
        i++;
      } else if (QUOTE.test(line)) {
        const body = [];
        while (i < lines.length && (m = lines[i].match(QUOTE))) { body.push(m[1]); i++; }
        html += "<blockquote>" + blocks(body) + "</blockquote>";
      } else if (ITEM.test(line)) {
        const [out, next] = list(lines, i);
        html += out;
        i = next;
      } else if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) &&
        lines[i + 1].includes("-")) {
        const [out, next] = table(lines, i);
        html += out;
        i = next;
      } else {
        const para = [];
        while (i < lines.length && lines[i].trim() && (para.length === 0 || !startsBlock(lines[i]))) {
          para.push(lines[i].trim());
          i++;
        }
        html += "<p>" + para.map(inline).join("<br>") + "</p>";
      }
    }
    return html;
  }

  // Markdown `text` as HTML.
  function render(text) {
    return blocks(String(text).replace(/\r\n?/g, "\n").split("\n"));
  }

  window.hearthMarkdown = { render, highlight, escape };
})();
