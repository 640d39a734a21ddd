package monitor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// State keeps one blob across restarts: the watch's windows, or the
// notifier's outbox.
type State interface {
	// Load returns the blob last saved, or nil when nothing was ever saved.
	Load() ([]byte, error)
	// Save replaces the blob. When it returns nil the blob survives a crash.
	Save([]byte) error
}

// FileState returns a [State] kept in the file at path. Save writes a
// temporary file beside it, syncs it, renames it over path and syncs the
// directory, so a crash leaves either the old blob or the new one, never a
// torn file.
func FileState(path string) State { return fileState(path) }

type fileState string

func (f fileState) Load() ([]byte, error) {
	data, err := os.ReadFile(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", string(f), err)
	}
	return data, nil
}

func (f fileState) Save(data []byte) error {
	path := string(f)
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save %s: %w", path, err)
	}
	done = true
	// The rename is durable only once the directory entry is.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save %s: sync directory: %w", path, err)
	}
	return nil
}
