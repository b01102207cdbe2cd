package transport

import (
	"context"
	"fmt"
	"log/slog"
)

// gnetLogger routes gnet's own log lines into the transport's slog.Logger, so a node has one
// log stream and tests stay quiet. gnet's info lines (engine start, shutdown) are operational
// detail and go out at debug level.
type gnetLogger struct{ log *slog.Logger }

func (g gnetLogger) emit(level slog.Level, format string, args []any) {
	if !g.log.Enabled(context.Background(), level) {
		return
	}
	g.log.Log(context.Background(), level, "gnet: "+fmt.Sprintf(format, args...))
}

func (g gnetLogger) Debugf(format string, args ...any) { g.emit(slog.LevelDebug, format, args) }
func (g gnetLogger) Infof(format string, args ...any)  { g.emit(slog.LevelDebug, format, args) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.emit(slog.LevelWarn, format, args) }
func (g gnetLogger) Errorf(format string, args ...any) { g.emit(slog.LevelError, format, args) }
func (g gnetLogger) Fatalf(format string, args ...any) { g.emit(slog.LevelError, format, args) }
