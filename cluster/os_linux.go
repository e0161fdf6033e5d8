package cluster

import (
	"io"
	"os"
	"os/exec"
	"sync"
)

// osSys is the real operating system: workers are cfg.Exe started again
// with cfg.Args, each in a goroutine pair that reports its readiness and its
// exit.
func osSys(cfg *Config) sys {
	g := &goroutines{}
	s := sys{
		start: func(spec spawnSpec, onReady func(), onExit func(error, string)) (process, error) {
			return startProcess(cfg, g, spec, onReady, onExit)
		},
		wait: g.wg.Wait,
	}
	if cfg.Private {
		s.listenPrivate = privateSockets()
	}
	realClock(&s)
	return s
}

type osProcess struct {
	cmd  *exec.Cmd
	mu   sync.Mutex    // guards line
	line string        // the latest line told, not yet written; "" if none
	wake chan struct{} // a line is waiting (capacity 1)
	done chan struct{} // closed when the process has exited
}

func (p *osProcess) Pid() int                   { return p.cmd.Process.Pid }
func (p *osProcess) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Tell never blocks: each line is the worker's whole state (lifeline.go),
// so a line not yet written is replaced by the next one, and the latest is
// always written.
func (p *osProcess) Tell(line string) {
	p.mu.Lock()
	p.line = line
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default: // the writer is woken already
	}
}

// startProcess starts one worker with the slot's files, a report pipe (fd
// 4: the worker says when it serves, and its last words; report.go) and a lifeline pipe (fd 5: the
// master's commands; EOF when the master is gone, however it died).
func startProcess(cfg *Config, g *goroutines, spec spawnSpec, onReady func(), onExit func(error, string)) (process, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		readyW.Close()
		return nil, err
	}
	cmd := exec.Command(cfg.Exe, cfg.Args...)
	cmd.Env = append(withoutWorkerEnv(cfg.Env, cfg.EnvPrefix), spec.Env...)
	cmd.ExtraFiles = append([]*os.File{spec.Files[0], readyW, lifeR}, spec.Files[1:]...)
	cmd.Stdout, cmd.Stderr = cfg.Stdout, cfg.Stderr
	err = cmd.Start()
	readyW.Close()
	lifeR.Close()
	if err != nil {
		readyR.Close()
		lifeW.Close()
		return nil, err
	}
	p := newOSProcess(cmd)
	g.wg.Go(func() { p.writeLifeline(lifeW) })
	g.wg.Go(func() {
		words := readReport(readyR, onReady) // until EOF: the worker has exited
		readyR.Close()
		err := cmd.Wait()
		close(p.done)
		onExit(err, words)
	})
	return p, nil
}

func newOSProcess(cmd *exec.Cmd) *osProcess {
	return &osProcess{cmd: cmd, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// writeLifeline writes the latest line told to the worker until it exits,
// then closes the master's end of the lifeline. A write blocks only this
// goroutine, until the worker reads or exits (the write then fails).
func (p *osProcess) writeLifeline(w *os.File) {
	defer w.Close()
	for {
		select {
		case <-p.wake:
			p.mu.Lock()
			line := p.line
			p.line = ""
			p.mu.Unlock()
			if line != "" {
				_, _ = io.WriteString(w, line+"\n")
			}
		case <-p.done:
			return
		}
	}
}

// supported reports whether workers can share the master's sockets here.
func supported() bool { return true }
