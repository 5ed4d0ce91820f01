package ledgertest

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogger returns a logger that writes every record, debug included, to
// t.Log, with the source file and line (sunlight's testLogHandler).
func TestLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		t.Logf("%s", strings.TrimSuffix(string(p), "\n"))
		return len(p), nil
	}), &slog.HandlerOptions{
		AddSource: true,
		Level:     slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if src, ok := a.Value.Any().(*slog.Source); ok && a.Key == slog.SourceKey {
				a.Value = slog.StringValue(fmt.Sprintf("%s:%d", filepath.Base(src.File), src.Line))
			}
			return a
		},
	}))
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
