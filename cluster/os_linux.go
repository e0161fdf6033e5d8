package cluster

import (
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// osSys is the real operating system: workers are cfg.Exe started again
// with cfg.Args, each in a goroutine pair that reports its readiness and its
// exit.
func osSys(cfg *Config) sys {
	g := &goroutines{}
	out := &outputs{}
	s := sys{
		start: func(spec spawnSpec, onReady func(), onExit func(error)) (process, error) {
			return startProcess(cfg, g, out, spec, onReady, onExit)
		},
		wait: func() {
			g.wg.Wait()
			out.close()
		},
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
//
// The worker's exit is learned from the process itself (wait4), never from
// its pipes: a child the worker started may hold them open long after it
// exited. So its stdout and stderr are always files (os/exec would
// otherwise wait for the end of its own copy), and the ready pipe is read
// beside the wait, not before it.
func startProcess(cfg *Config, g *goroutines, out *outputs, spec spawnSpec, onReady func(), onExit func(error)) (process, error) {
	stdout, err := out.file(&out.stdout, cfg.Stdout)
	if err != nil {
		return nil, err
	}
	stderr, err := out.file(&out.stderr, cfg.Stderr)
	if err != nil {
		return nil, err
	}
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
	cmd.Stdout, cmd.Stderr = stdout, stderr
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
	exited := make(chan error, 1)
	g.wg.Go(func() { exited <- cmd.Wait() }) // stdout and stderr are files: the process's exit only
	ready := make(chan bool, 1)
	g.wg.Go(func() {
		var b [1]byte
		n, _ := readyR.Read(b[:]) // one byte when ready; EOF once nobody holds the write end
		ready <- n == 1
	})
	g.wg.Go(func() {
		defer readyR.Close()
		var err error
		select {
		case ok := <-ready:
			if ok {
				onReady()
			}
			err = <-exited
		case err = <-exited:
			// The worker is gone, and a child of its may hold the ready
			// pipe: stop the read, then take a byte the worker wrote before
			// it exited, if it did.
			_ = readyR.SetReadDeadline(time.Now())
			if <-ready || len(leftover(readyR)) > 0 {
				onReady()
			}
		}
		close(p.done)
		onExit(err)
	})
	return p, nil
}

// leftover reads what is already in the pipe r, without waiting for more:
// what a worker wrote before it exited, while a child of its may still
// hold the write end (so EOF may never come).
func leftover(r *os.File) []byte {
	if r.SetReadDeadline(time.Time{}) != nil {
		return nil
	}
	rc, err := r.SyscallConn()
	if err != nil {
		return nil
	}
	var out []byte
	buf := make([]byte, 512)
	_ = rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.Read(int(fd), buf)
			if n > 0 {
				out = append(out, buf[:n]...)
			}
			if err == syscall.EINTR {
				continue
			}
			if n <= 0 || err != nil {
				return true // empty, EOF or an error: never wait
			}
		}
	})
	return out
}

// outputs are the pipes through which the workers' stdout and stderr reach
// Config.Stdout and Config.Stderr when those are not files: one pipe per
// stream, shared by every worker, copied by one goroutine each, so that no
// worker's exit waits for a copy. Files are handed to the workers as they
// are.
type outputs struct {
	stdout, stderr *pipeCopy
	wg             sync.WaitGroup // the copies
}

type pipeCopy struct {
	r, w *os.File
}

// file is what a worker gets as the stream *p copied to w.
func (o *outputs) file(p **pipeCopy, w io.Writer) (*os.File, error) {
	if f, ok := w.(*os.File); ok {
		return f, nil
	}
	if *p == nil {
		r, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		*p = &pipeCopy{r: r, w: pw}
		o.wg.Go(func() {
			_, _ = io.Copy(w, r)
			r.Close()
		})
	}
	return (*p).w, nil
}

// outputGrace is how long, once every worker has exited, what their own
// children still write is copied before the pipes are closed.
const outputGrace = time.Second

// close ends the copies, once every worker has exited: what is in the
// pipes is copied, for outputGrace at most while a worker's child still
// holds one open.
func (o *outputs) close() {
	for _, p := range []*pipeCopy{o.stdout, o.stderr} {
		if p != nil {
			p.w.Close()
			_ = p.r.SetReadDeadline(time.Now().Add(outputGrace))
		}
	}
	o.wg.Wait()
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
