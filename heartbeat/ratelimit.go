package heartbeat

import "time"

// logLimiter lets one log line per kind through per interval and counts the
// ones it holds back, so a flood of bad packets costs a line every interval,
// not one per packet. Time comes in as an argument.
type logLimiter struct {
	every      time.Duration
	last       map[string]time.Time
	suppressed map[string]int
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// allow reports whether a line of this kind may be logged at now, and if so
// how many were held back since the last one.
func (l *logLimiter) allow(kind string, now time.Time) (bool, int) {
	if last, ok := l.last[kind]; ok && now.Sub(last) < l.every {
		l.suppressed[kind]++
		return false, 0
	}
	n := l.suppressed[kind]
	l.last[kind] = now
	delete(l.suppressed, kind)
	return true, n
}
