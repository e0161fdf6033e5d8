package cluster

import (
	"io"
	"os"
	"os/exec"
	"time"
)

// osSys is the real operating system: workers are cfg.Exe started again
// with cfg.Args, each in a goroutine pair that reports its readiness and its
// exit.
func osSys(cfg *Config) sys {
	g := &goroutines{}
	s := sys{
		start: func(spec spawnSpec, onReady func(), onExit func(error)) (process, error) {
			return startProcess(cfg, g, spec, onReady, onExit)
		},
		wait:   g.wg.Wait,
		listen: listenFile,
		rss:    readRSS,
	}
	if cfg.Private {
		s.listenPrivate = privateSockets()
	}
	realClock(&s)
	return s
}

type osProcess struct {
	cmd   *exec.Cmd
	lines chan string   // for the lifeline writer
	done  chan struct{} // closed when the process has exited
}

func (p *osProcess) Pid() int                   { return p.cmd.Process.Pid }
func (p *osProcess) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

func (p *osProcess) Tell(line string) {
	select {
	case p.lines <- line:
	default: // the worker reads its lifeline all the time; one that does not loses lines
	}
}

// startProcess starts one worker with the slot's files, a ready pipe (fd 4:
// the worker writes one byte when it serves) and a lifeline pipe (fd 5: the
// master's commands; EOF when the master is gone, however it died).
func startProcess(cfg *Config, g *goroutines, spec spawnSpec, onReady func(), onExit func(error)) (process, error) {
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
	p := &osProcess{cmd: cmd, lines: make(chan string, 64), done: make(chan struct{})}
	g.wg.Go(func() { p.writeLifeline(lifeW) })
	g.wg.Go(func() {
		var b [1]byte
		n, _ := readyR.Read(b[:]) // one byte when ready; EOF if the worker exits first
		readyR.Close()
		if n == 1 {
			onReady()
		}
		err := cmd.Wait()
		close(p.done)
		onExit(err)
	})
	return p, nil
}

// writeLifeline writes the master's lines to the worker until it exits,
// then closes the master's end of the lifeline.
func (p *osProcess) writeLifeline(w *os.File) {
	defer w.Close()
	for {
		select {
		case line := <-p.lines:
			// The deadline only guards against a worker that stopped reading.
			_ = w.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(w, line+"\n") // a worker stuck past the deadline loses the line
		case <-p.done:
			return
		}
	}
}

// supported reports whether workers can share the master's sockets here.
func supported() bool { return true }
