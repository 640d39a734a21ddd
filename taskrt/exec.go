package taskrt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"time"
)

// ExitUsage is the exit status (EX_USAGE of sysexits.h) by which an exec
// function says that its request is wrong and retrying cannot help. Any other
// non-zero exit status is retried.
const ExitUsage = 64

// execWaitDelay bounds how long Call waits, after the command exits or is
// killed, for the pipes to close: a process outside the command's process
// group that inherited stdout must not hang the call.
const execWaitDelay = time.Second

// ExecFunction is a function run as a local command (SPEC §1, §4). Call
// starts Argv with the [Request] as JSON on stdin and reads one JSON object
// from stdout.
//
// Exit status 0 with a JSON object on stdout is success; exit status 0 with
// anything else, and exit status [ExitUsage], are permanent failures; any
// other exit status, or death by a signal, is retried. Errors quote the last
// 512 bytes of stderr. When the context is done the command's whole process
// group is killed, so a script's children die with it.
type ExecFunction struct {
	// Argv is the command and its arguments; Argv[0] is looked up in PATH
	// if it holds no slash.
	Argv []string
	// Env is the command's whole environment; nil inherits the node's.
	Env []string
	// Dir is the working directory; empty means the node's.
	Dir string
}

var _ Function = (*ExecFunction)(nil)

// NewExecFunction returns the function that runs argv. It fails if argv is
// empty or argv[0] is not an executable file.
func NewExecFunction(argv []string) (*ExecFunction, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("exec function: no command")
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, fmt.Errorf("exec function: %w", err)
	}
	return &ExecFunction{Argv: append([]string(nil), argv...)}, nil
}

// Call implements [Function].
func (f *ExecFunction) Call(ctx context.Context, req Request) (map[string]any, error) {
	if len(f.Argv) == 0 || f.Argv[0] == "" {
		return nil, Permanent(errors.New("exec function: no command"))
	}
	in, err := requestJSON(req)
	if err != nil {
		return nil, Permanent(err)
	}
	name := f.Argv[0]
	cmd := exec.CommandContext(ctx, name, f.Argv[1:]...)
	cmd.Env = f.Env
	cmd.Dir = f.Dir
	cmd.Stdin = bytes.NewReader(in)
	stdout := &cappedBuffer{limit: maxResultSize}
	stderr := &tailBuffer{size: errorBodySize}
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	killProcessGroupOnCancel(cmd)
	cmd.WaitDelay = execWaitDelay

	runErr := cmd.Run()
	switch {
	case runErr == nil:
	case ctx.Err() != nil:
		return nil, fmt.Errorf("exec %s: %w (%v)", name, ctx.Err(), runErr)
	case errors.Is(runErr, exec.ErrWaitDelay):
		return nil, fmt.Errorf("exec %s: exited, but a process it started kept stdout open for %v", name, execWaitDelay)
	default:
		var exitErr *exec.ExitError
		if errors.As(runErr, &exitErr) {
			err := fmt.Errorf("exec %s: %w%s", name, runErr, stderr.quote())
			if exitErr.ExitCode() == ExitUsage {
				return nil, Permanent(err)
			}
			return nil, err
		}
		err := fmt.Errorf("exec %s: %w", name, runErr)
		if errors.Is(runErr, exec.ErrNotFound) || errors.Is(runErr, fs.ErrNotExist) || errors.Is(runErr, fs.ErrPermission) {
			return nil, Permanent(err)
		}
		return nil, err
	}
	if stdout.overflow {
		return nil, Permanent(fmt.Errorf("exec %s: stdout is larger than %d bytes", name, maxResultSize))
	}
	out, err := decodeResult(stdout.buf.Bytes())
	if err != nil {
		return nil, Permanent(fmt.Errorf("exec %s: stdout: %w%s", name, err, stderr.quote()))
	}
	return out, nil
}

// cappedBuffer keeps the first limit bytes written to it and notes whether
// more came. It never fails a write: a command blocked on a full pipe would
// only end at its deadline.
type cappedBuffer struct {
	buf      bytes.Buffer
	limit    int
	overflow bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - b.buf.Len(); len(p) > room {
		b.overflow = true
		b.buf.Write(p[:max(room, 0)])
	} else {
		b.buf.Write(p)
	}
	return len(p), nil
}

// tailBuffer keeps the last size bytes written to it: the end of stderr is
// where a failing command says why.
type tailBuffer struct {
	buf  []byte
	size int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.size {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.size:]...)
	}
	return len(p), nil
}

// quote formats the tail for an error message, empty if stderr was.
func (b *tailBuffer) quote() string {
	tail := b.buf
	if len(tail) > b.size {
		tail = tail[len(tail)-b.size:]
	}
	tail = bytes.TrimSpace(tail)
	if len(tail) == 0 {
		return ""
	}
	return fmt.Sprintf("; stderr: %q", tail)
}
