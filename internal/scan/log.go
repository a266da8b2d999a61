package scan

import (
	"context"
	"fmt"
	"log/slog"

	scalibrlog "github.com/google/osv-scalibr/log"
)

// scalibrLogger sends osv-scalibr's log, which reports every filesystem
// walk at info level, to our logger at debug level; its errors stay
// visible as warnings.
type scalibrLogger struct{ l *slog.Logger }

func (s scalibrLogger) log(level slog.Level, msg string) {
	s.l.Log(context.Background(), level, msg, "component", "scalibr")
}

func (s scalibrLogger) Errorf(format string, args ...any) {
	s.log(slog.LevelWarn, fmt.Sprintf(format, args...))
}
func (s scalibrLogger) Error(args ...any) { s.log(slog.LevelWarn, fmt.Sprint(args...)) }
func (s scalibrLogger) Warnf(format string, args ...any) {
	s.log(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (s scalibrLogger) Warn(args ...any) { s.log(slog.LevelDebug, fmt.Sprint(args...)) }
func (s scalibrLogger) Infof(format string, args ...any) {
	s.log(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (s scalibrLogger) Info(args ...any) { s.log(slog.LevelDebug, fmt.Sprint(args...)) }
func (s scalibrLogger) Debugf(format string, args ...any) {
	s.log(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (s scalibrLogger) Debug(args ...any) { s.log(slog.LevelDebug, fmt.Sprint(args...)) }

// SetLogger sends osv-scalibr's log to l: its walks at debug level, its
// errors as warnings. The library keeps its logger in a package variable,
// so this is process-wide; call it once logging is set up.
func SetLogger(l *slog.Logger) { scalibrlog.SetLogger(scalibrLogger{l}) }
