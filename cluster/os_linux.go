package cluster

import (
	"io"
	"os"
	"os/exec"
	"runtime"
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
		cpus: runtime.GOMAXPROCS(0),
		start: func(spec spawnSpec, onReady func(), onExit func(error, string)) (process, error) {
			return startProcess(cfg, g, out, spec, onReady, onExit)
		},
		wait: func() {
			g.wg.Wait()
			out.close()
		},
		listen:    listenFile,
		listening: isListening,
		rss:       readRSS,
	}
	if cfg.PrivateSockets {
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
// 4: the worker says when it serves, and its last words; report.go) and a
// lifeline pipe (fd 5: the master's commands; EOF when the master is gone,
// however it died).
//
// The worker's exit is learned from the process itself (wait4), never from
// its pipes: a child the worker started may hold them open long after it
// exited. So its stdout and stderr are always files (os/exec would
// otherwise wait for the end of its own copy), and the ready pipe is read
// beside the wait, not before it: once the worker has exited, what it wrote
// there is read without waiting for the pipe's end.
func startProcess(cfg *Config, g *goroutines, out *outputs, spec spawnSpec, onReady func(), onExit func(error, string)) (process, error) {
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
	p := newOSProcess(cmd)
	g.wg.Go(func() { p.writeLifeline(lifeW) })
	exited := make(chan error, 1)
	g.wg.Go(func() { exited <- cmd.Wait() }) // stdout and stderr are files: the process's exit only
	var rep reportReader                     // fed by the reader until read is closed, then here
	read := make(chan struct{})
	g.wg.Go(func() {
		defer close(read)
		feedReport(readyR, &rep, onReady) // until EOF, or the deadline set below
	})
	g.wg.Go(func() {
		defer readyR.Close()
		err := <-exited
		// The worker is gone, and a child of its may hold the report pipe:
		// stop the read, then take what the worker wrote before it exited.
		_ = readyR.SetReadDeadline(time.Now())
		<-read
		if rep.feed(leftover(readyR)) {
			onReady()
		}
		close(p.done)
		onExit(err, rep.lastWords())
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
