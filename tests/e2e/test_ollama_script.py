"""A script written for Ollama runs unchanged against hearth: `ollama` on the
PATH is the hearth binary, `OLLAMA_HOST` points at the server, and the script
creates a model from a Modelfile with a Go template, runs it, shows and lists
it, chats with it through the `ollama` Python client, copies and removes it."""

import os
import subprocess
import sys
import textwrap

from conftest import TARGET

SCRIPT = r'''
set -eu
cat > Modelfile <<END
FROM $GGUF
TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
SYSTEM You answer in one line.
PARAMETER temperature 0
PARAMETER num_predict 8
PARAMETER stop <|im_end|>
END
ollama create scripted -f Modelfile
ollama run scripted "Say hello" --nowordwrap > run.txt
ollama show scripted --system > system.txt
ollama list > list.txt
ollama ps > ps.txt
"$PYTHON" - <<'END' > chat.txt
import ollama
r = ollama.chat(model="scripted", messages=[{"role": "user", "content": "Say hello"}])
print(r.message.content)
END
ollama cp scripted scripted-copy
ollama rm scripted scripted-copy
ollama list > after.txt
'''


def test_an_ollama_script_runs_unchanged(server, gguf, tmp_path):
    hearth = os.environ.get("HEARTH_BIN", str(TARGET / "debug" / "hearth"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ollama").symlink_to(os.path.abspath(hearth))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        OLLAMA_HOST=server.url.removeprefix("http://"),
        GGUF=str(gguf),
        PYTHON=sys.executable,
    )
    done = subprocess.run(
        ["bash", "-c", textwrap.dedent(SCRIPT)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    def read(name):
        return (tmp_path / name).read_text()

    answer = read("run.txt").strip()
    assert answer, "run printed an answer"
    # The same conversation through the API, with the same template and
    # greedy parameters, gives the same answer.
    assert read("chat.txt").strip() == answer
    assert read("system.txt").strip() == "You answer in one line."
    assert "scripted:latest" in read("list.txt")
    assert "scripted:latest" in read("ps.txt")
    assert "scripted" not in read("after.txt")
