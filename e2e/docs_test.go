package e2e

// The documents cannot drift from the binary: every lbserver command line in
// docs/*.md (in fenced code blocks and in inline code) is run through the
// binary's parser with --check appended, and must exit 0.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// docCommand is one lbserver command line found in a document.
type docCommand struct {
	Where string   // file:line
	Text  string   // the line as written
	Env   []string // VAR=value written before the command
	Args  []string // the arguments after the executable
}

// Key identifies the command by what it runs (not where or how it is written).
func (c docCommand) Key() string {
	return strings.Join(append(append([]string(nil), c.Env...), c.Args...), " ")
}

// docWord is a shell word, or an operator when Op is set.
type docWord struct {
	S      string
	Op     bool // ; & && | || (ends a simple command)
	Redir  bool // < > >> 2>&1 ... (S is the operator)
	Expand bool // holds an unquoted or double-quoted $ (a shell expansion)
}

// docLex splits a shell line into words and operators. It knows quotes,
// backslashes, comments, control operators and redirections; enough for
// documentation, not a full shell.
func docLex(line string) ([]docWord, error) {
	var (
		out  []docWord
		cur  strings.Builder
		in   bool // a word is open
		exp  bool
		rs   = []rune(line)
		emit = func() {
			if in {
				out = append(out, docWord{S: cur.String(), Expand: exp})
			}
			cur.Reset()
			in, exp = false, false
		}
	)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t':
			emit()
		case r == '#' && !in:
			i = len(rs)
		case r == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			in = true
		case r == '\'':
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j == len(rs) {
				return nil, fmt.Errorf("unterminated ' in %q", line)
			}
			cur.WriteString(string(rs[i+1 : j]))
			i = j
			in = true
		case r == '"':
			in = true
			i++
			for ; i < len(rs) && rs[i] != '"'; i++ {
				if rs[i] == '\\' && i+1 < len(rs) && strings.ContainsRune(`"\$`+"`", rs[i+1]) {
					i++
				} else if rs[i] == '$' || rs[i] == '`' {
					exp = true
				}
				cur.WriteRune(rs[i])
			}
			if i == len(rs) {
				return nil, fmt.Errorf(`unterminated " in %q`, line)
			}
		case r == '$' || r == '`':
			exp = true
			cur.WriteRune(r)
			in = true
		case r == ';' || r == '&' || r == '|':
			if r == '&' && i+1 < len(rs) && rs[i+1] == '>' { // &> file
				emit()
				i++
				out = append(out, docWord{S: "&>", Redir: true})
				continue
			}
			emit()
			op := string(r)
			if i+1 < len(rs) && rs[i+1] == r {
				op += string(r)
				i++
			}
			out = append(out, docWord{S: op, Op: true})
		case r == '<' || r == '>':
			// A word of digits just before is the file descriptor: drop it.
			if in && strings.Trim(cur.String(), "0123456789") == "" && !exp {
				cur.Reset()
				in = false
			}
			emit()
			op := string(r)
			for i+1 < len(rs) && strings.ContainsRune("<>&", rs[i+1]) {
				i++
				op += string(rs[i])
			}
			if strings.HasSuffix(op, "&") { // >&1, <&0: the target is a descriptor
				for i+1 < len(rs) && strings.ContainsRune("0123456789-", rs[i+1]) {
					i++
					op += string(rs[i])
				}
			}
			out = append(out, docWord{S: op, Redir: true})
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	emit()
	return out, nil
}

// docDupFD is a redirection to a descriptor (2>&1 lexes as ">&1"): no file name follows.
var docDupFD = regexp.MustCompile(`&[0-9-]+$`)

// docWrappers run the command that follows them.
var docWrappers = map[string]bool{"sudo": true, "nohup": true, "setsid": true, "exec": true, "env": true, "time": true, "command": true,
	"scripts/bg.sh": true} // docs/COMMANDS.md starts instances in the background with it

// docCommands returns the lbserver commands of one shell line (nil if none).
func docCommands(line string) ([]docCommand, error) {
	words, err := docLex(line)
	if err != nil {
		return nil, err
	}
	var cmds []docCommand
	var simple []docWord
	flush := func() error {
		defer func() { simple = nil }()
		var ws []docWord
		for i := 0; i < len(simple); i++ {
			w := simple[i]
			if w.Redir {
				if !docDupFD.MatchString(w.S) {
					i++ // skip the file name
				}
				continue
			}
			ws = append(ws, w)
		}
		var env []string
		for len(ws) > 0 {
			w := ws[0].S
			w = strings.TrimPrefix(w, "ExecStart=") // a systemd unit line
			ws[0].S = w
			if docWrappers[w] {
				ws = ws[1:]
				continue
			}
			if i := strings.IndexByte(w, '='); i > 0 && !strings.ContainsAny(w[:i], "/-.") {
				env = append(env, w)
				ws = ws[1:]
				continue
			}
			break
		}
		if len(ws) == 0 {
			return nil
		}
		var args []docWord
		switch {
		case filepath.Base(ws[0].S) == "lbserver":
			args = ws[1:]
		case ws[0].S == "pm2" && slices.ContainsFunc(ws, func(w docWord) bool { return filepath.Base(w.S) == "lbserver" }):
			// pm2 start ./bin/lbserver [pm2 options] -- [lbserver arguments]
			if i := slices.IndexFunc(ws, func(w docWord) bool { return w.S == "--" }); i >= 0 {
				args = ws[i+1:]
			}
		default:
			return nil
		}
		if len(args) > 0 && slices.Contains([]string{"reload", "upgrade", "scale", "restart-worker"}, args[0].S) {
			// `lbserver reload|upgrade|scale|restart-worker PID ...` ask a
			// running master: not server command lines (TestSystemdClusterNotify,
			// TestUpgradeUnderLoad and TestSuperviseScale run them).
			return nil
		}
		c := docCommand{Text: strings.TrimSpace(line), Env: env}
		for _, a := range args {
			if a.Expand {
				return fmt.Errorf("%q: the argument %q uses shell expansion; write the value itself so that it can be checked", c.Text, a.S)
			}
			// systemd's instance specifier in a template unit: an example port.
			c.Args = append(c.Args, strings.ReplaceAll(strings.ReplaceAll(a.S, "%i", "8082"), "%I", "8082"))
		}
		cmds = append(cmds, c)
		return nil
	}
	for _, w := range words {
		if w.Op {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		simple = append(simple, w)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return cmds, nil
}

// docExtract returns every lbserver command of a Markdown file: the lines of
// fenced code blocks (a trailing backslash joins lines; a leading "$ " prompt
// is dropped) and the inline code spans.
func docExtract(path string) ([]docCommand, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		cmds    []docCommand
		fence   string // the open fence, "" outside a code block
		pending string // a continued line
		start   int
	)
	add := func(lineNo int, line string) error {
		cs, err := docCommands(line)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", filepath.Base(path), lineNo, err)
		}
		for _, c := range cs {
			c.Where = fmt.Sprintf("%s:%d", filepath.Base(path), lineNo)
			cmds = append(cmds, c)
		}
		return nil
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if fence == "" {
			if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
				fence = trimmed[:3]
				continue
			}
			parts := strings.Split(line, "`")
			for i := 1; i < len(parts)-1; i += 2 {
				if err := add(n, parts[i]); err != nil {
					return nil, err
				}
			}
			continue
		}
		if strings.HasPrefix(trimmed, fence) {
			fence = ""
			continue
		}
		if pending == "" {
			start = n
			trimmed = strings.TrimPrefix(trimmed, "$ ")
		}
		if strings.HasSuffix(trimmed, `\`) {
			pending += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		line, pending = pending+trimmed, ""
		if err := add(start, line); err != nil {
			return nil, err
		}
	}
	return cmds, sc.Err()
}

func TestDocsExtractCommands(t *testing.T) {
	tests := []struct {
		line string
		want [][]string // env + args of each lbserver command
	}{
		{"./bin/lbserver --port 8080 --mode FORK   # comment", [][]string{{"--port", "8080", "--mode", "FORK"}}},
		{"setsid ./bin/lbserver --host 127.0.0.1 --port 8082 > run/logs/x.log 2>&1 < /dev/null & echo $! > run/pids/x.pid",
			[][]string{{"--host", "127.0.0.1", "--port", "8082"}}},
		{"scripts/bg.sh ./bin/lbserver --host 127.0.0.1 --port 8082 --mode FORK", [][]string{{"--host", "127.0.0.1", "--port", "8082", "--mode", "FORK"}}},
		{"PORT=8081 MODE=cluster ./bin/lbserver --host 127.0.0.1", [][]string{{"PORT=8081", "MODE=cluster", "--host", "127.0.0.1"}}},
		{`lbserver --watch --watch-dir internal --build "go build -o bin/lbserver ./cmd/lbserver"`,
			[][]string{{"--watch", "--watch-dir", "internal", "--build", "go build -o bin/lbserver ./cmd/lbserver"}}},
		{"pm2 start ./bin/lbserver --name lb-8082 -i 2 -- --port 8082 --reuseport", [][]string{{"--port", "8082", "--reuseport"}}},
		{"ExecStart=/usr/local/bin/lbserver --port %i --mode FORK", [][]string{{"--port", "8082", "--mode", "FORK"}}},
		{"lbserver -p 8080 && lbserver -p 8081 &>/dev/null", [][]string{{"-p", "8080"}, {"-p", "8081"}}},
		{"ps -o pid,args -C lbserver", nil},
		{"ExecReload=/usr/local/bin/lbserver reload $MAINPID", nil},
		{"lbserver upgrade \"$(systemctl show -p MainPID --value lbserver-cluster)\"", nil},
		{"pgrep -af 'lbserver .*--port 8081'", nil},
		{"kill -TERM \"$(cat run/pids/lbserver-8082.pid)\"", nil},
	}
	for _, tc := range tests {
		cmds, err := docCommands(tc.line)
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		var got [][]string
		for _, c := range cmds {
			got = append(got, append(append([]string(nil), c.Env...), c.Args...))
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.line, got, tc.want)
		}
	}
	if _, err := docCommands(`lbserver --port "$PORT"`); err == nil {
		t.Error(`lbserver --port "$PORT": got no error, want one (a shell expansion cannot be checked)`)
	}
}

// docCheck runs the command through the binary with --check appended.
func docCheck(c docCommand) (string, error) {
	cmd := exec.Command(binPath, append(append([]string(nil), c.Args...), "--check")...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PORT=") && !strings.HasPrefix(kv, "MODE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, c.Env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestDocsCommandsPassCheck(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot(), "docs", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs/*.md (%v)", err)
	}
	files = append(files, filepath.Join(repoRoot(), "README.md"), filepath.Join(repoRoot(), "README.es.md"))
	byFile := map[string][]docCommand{}
	for _, f := range files {
		cmds, err := docExtract(f)
		if err != nil {
			t.Fatal(err)
		}
		byFile[filepath.Base(f)] = cmds
		for _, c := range cmds {
			if out, err := docCheck(c); err != nil {
				t.Errorf("%s: %s\n  lbserver %s --check: %v\n  %s", c.Where, c.Text, c.Key(), err, strings.TrimSpace(out))
			}
		}
	}

	// The commands document covers every instance of both topologies.
	en := byFile["COMMANDS.md"]
	for _, want := range []string{
		"--host 127.0.0.1 --port 8080 --mode FORK",
		"--host 127.0.0.1 --port 8081 --mode CLUSTER",
		"--host 127.0.0.1 --port 8082 --mode FORK",
		"--host 127.0.0.1 --port 8083 --mode FORK",
		"--host 127.0.0.1 --port 8084 --mode FORK",
		"--host 127.0.0.1 --port 8085 --mode FORK",
	} {
		if !slices.ContainsFunc(en, func(c docCommand) bool { return c.Key() == want }) {
			t.Errorf("COMMANDS.md has no command `lbserver %s`", want)
		}
	}

	// The Spanish version has the same commands.
	keys := func(cs []docCommand) []string {
		var k []string
		for _, c := range cs {
			k = append(k, c.Key())
		}
		slices.Sort(k)
		return k
	}
	if got, want := keys(byFile["COMANDOS.md"]), keys(en); !slices.Equal(got, want) {
		t.Errorf("COMANDOS.md and COMMANDS.md differ in their lbserver commands:\nCOMANDOS.md: %q\nCOMMANDS.md: %q", got, want)
	}
	t.Logf("%d lbserver command lines checked in %d files", func() int {
		n := 0
		for _, cs := range byFile {
			n += len(cs)
		}
		return n
	}(), len(files))
}

// --check really validates: a command line with a bad flag value fails, so
// a doc that drifts from the flags fails TestDocsCommandsPassCheck.
func TestDocsCheckRejectsBadCommand(t *testing.T) {
	for _, args := range [][]string{{"--port", "99999"}, {"--mode", "POOL"}, {"--no-such-flag"}} {
		if out, err := docCheck(docCommand{Args: args}); err == nil {
			t.Errorf("lbserver %s --check: exit 0 (%s), want an error", strings.Join(args, " "), strings.TrimSpace(out))
		}
	}
}

// README's /api/info row lists exactly the keys the server sends.
func TestDocsReadmeAPIInfoKeys(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?m)^\\| `GET /api/info` \\|[^`]*`([^`]+)` \\|").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no `GET /api/info` row with a key list in code")
	}
	var doc []string
	for _, k := range strings.Split(string(m[1]), ",") {
		doc = append(doc, strings.TrimSpace(k))
	}
	port := FreePort(t)
	p := StartLB(t, "--host", "127.0.0.1", "--port", fmt.Sprint(port))
	url := fmt.Sprintf("http://127.0.0.1:%d/api/info", port)
	WaitHTTP(t, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 15*time.Second)
	var got map[string]any
	if err := json.Unmarshal(MustGet(t, url).Body, &got); err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(maps.Keys(got))
	slices.Sort(doc)
	if !slices.Equal(doc, keys) {
		t.Errorf("README.md lists the /api/info keys %q; the server sends %q", doc, keys)
	}
}
