// Package watch is lbserver's --watch and --build: it asks the CLUSTER master
// for a rolling reload when the executable changes, and rebuilds it when a
// source file changes.
package watch

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/lbserver/lbserver/internal/buildid"
)

// Options configure Run.
type Options struct {
	Exe      string   // the executable the workers run
	Dirs     []string // source folders (recursive); a change runs Build
	Build    string   // shell command that rebuilds Exe
	Debounce time.Duration
	Logger   *slog.Logger
}

// skipDirs are never watched as sources: build output, run state, tools.
var skipDirs = map[string]bool{".git": true, "bin": true, "run": true, "node_modules": true, "artifacts": true}

// Run calls reload whenever the executable's content changes (after
// Debounce without further events), and runs Build when a file under Dirs
// changes. A failed build is logged and the running workers keep serving.
// Run returns when ctx is done.
func Run(ctx context.Context, o Options, reload func()) error {
	if o.Debounce == 0 {
		o.Debounce = 300 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	exe, err := filepath.Abs(o.Exe)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.Close()
	// The folder, not the file: a rebuild often replaces the file (rename),
	// which a watch on the file itself would lose.
	if err := w.Add(filepath.Dir(exe)); err != nil {
		return fmt.Errorf("watch %s: %w", filepath.Dir(exe), err)
	}
	var srcDirs []string
	for _, d := range o.Dirs {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return err
			}
			if p != d && (skipDirs[e.Name()] || strings.HasPrefix(e.Name(), ".")) {
				return filepath.SkipDir
			}
			abs, _ := filepath.Abs(p)
			srcDirs = append(srcDirs, abs)
			return w.Add(p)
		})
		if err != nil {
			return fmt.Errorf("watch %s: %w", d, err)
		}
	}
	hash, _ := buildid.OfFile(exe)
	o.Logger.Info("watching", "exe", exe, "build", hash, "source_dirs", len(srcDirs))

	exeTimer := stoppedTimer()
	srcTimer := stoppedTimer()
	defer exeTimer.Stop()
	defer srcTimer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			o.Logger.Warn("watch error", "err", err)
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			name, _ := filepath.Abs(ev.Name)
			switch {
			case name == exe:
				exeTimer.Reset(o.Debounce)
			case len(o.Dirs) > 0 && isSource(name, srcDirs):
				if ev.Has(fsnotify.Create) {
					if fi, err := os.Stat(name); err == nil && fi.IsDir() && !skipDirs[fi.Name()] {
						_ = w.Add(name)
					}
				}
				srcTimer.Reset(o.Debounce)
			}
		case <-srcTimer.C:
			if o.Build == "" {
				exeTimer.Reset(0) // nothing to build: sources changed, reload as they are
				continue
			}
			o.Logger.Info("sources changed; building", "cmd", o.Build)
			cmd := exec.CommandContext(ctx, "sh", "-c", o.Build)
			out, err := cmd.CombinedOutput()
			if err != nil {
				o.Logger.Error("build failed; workers keep the old code", "err", err, "output", strings.TrimSpace(string(out)))
				continue
			}
			exeTimer.Reset(o.Debounce)
		case <-exeTimer.C:
			h, err := buildid.OfFile(exe)
			if err != nil {
				o.Logger.Warn("executable not readable; waiting for the next change", "err", err)
				continue
			}
			if h == hash && len(o.Dirs) == 0 {
				continue
			}
			if h == hash {
				o.Logger.Info("executable unchanged; reloading anyway for the source change")
			}
			o.Logger.Info("executable changed; rolling reload", "old_build", hash, "new_build", h)
			hash = h
			reload()
		}
	}
}

// isSource reports whether a changed path is a source file worth a rebuild.
func isSource(name string, dirs []string) bool {
	base := filepath.Base(name)
	if strings.HasPrefix(base, ".") || strings.HasSuffix(base, "~") || strings.HasSuffix(base, ".swp") {
		return false
	}
	dir := filepath.Dir(name)
	for _, d := range dirs {
		if dir == d {
			return true
		}
	}
	return false
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
