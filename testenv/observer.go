package testenv

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Violation is one instant at which both nodes held the service.
type Violation struct {
	// At is when the sample was taken.
	At time.Time
	// What names what both held: "address 198.18.0.50", "data volume",
	// "smbd".
	What string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: both nodes hold %s", v.At.Format("15:04:05.000"), v.What)
}

// ObserverSpec says what the observer watches.
type ObserverSpec struct {
	// Address is the service's floating address; zero means FloatIP.
	Address netip.Addr
	// Process is the service daemon's command name; empty means "smbd".
	Process string
	// Interval between samples; zero means 20 ms.
	Interval time.Duration
}

// Observer samples both nodes and records every instant at which both hold
// the floating address, have the data volume mounted, or run the service
// daemon: the lab's check of "never two actives".
type Observer struct {
	lab  *Lab
	spec ObserverSpec
	nets [2]*nsHandle // its own netlink sockets, one per node
	stop chan struct{}
	done chan struct{}

	mu         sync.Mutex
	samples    int
	violations []Violation
	errs       []string
}

// Observe starts an observer. Stop it with Stop; Close stops it too.
func (l *Lab) Observe(spec ObserverSpec) *Observer {
	if !spec.Address.IsValid() {
		spec.Address = FloatIP.Addr()
	}
	if spec.Process == "" {
		spec.Process = "smbd"
	}
	if spec.Interval == 0 {
		spec.Interval = 20 * time.Millisecond
	}
	o := &Observer{lab: l, spec: spec, stop: make(chan struct{}), done: make(chan struct{})}
	for i, n := range []string{"a", "b"} {
		h, err := openNs(l.Node(n).nsPath)
		if err != nil {
			o.errs = append(o.errs, err.Error())
			close(o.done)
			close(o.stop)
			return o
		}
		o.nets[i] = h
	}
	l.mu.Lock()
	l.observers = append(l.observers, o)
	l.mu.Unlock()
	go o.run()
	return o
}

func (o *Observer) run() {
	defer close(o.done)
	defer func() {
		for _, h := range o.nets {
			h.close()
		}
	}()
	t := time.NewTicker(o.spec.Interval)
	defer t.Stop()
	for {
		o.sample()
		select {
		case <-o.stop:
			return
		case <-t.C:
		}
	}
}

// holds says what a node holds right now.
func (o *Observer) holds(i int, h *Host) (addr, mounted, proc bool, err error) {
	if addr, err = o.nets[i].hasAddr(o.spec.Address); err != nil {
		return
	}
	if mounted, err = h.Mounted(); err != nil {
		return
	}
	proc, err = h.Running(o.spec.Process)
	return
}

func (o *Observer) sample() {
	now := time.Now()
	a1, m1, p1, err1 := o.holds(0, o.lab.Node("a"))
	a2, m2, p2, err2 := o.holds(1, o.lab.Node("b"))
	o.mu.Lock()
	defer o.mu.Unlock()
	o.samples++
	for _, err := range []error{err1, err2} {
		if err != nil && len(o.errs) < 100 {
			o.errs = append(o.errs, err.Error())
		}
	}
	if a1 && a2 {
		o.violations = append(o.violations, Violation{now, "address " + o.spec.Address.String()})
	}
	if m1 && m2 {
		o.violations = append(o.violations, Violation{now, "data volume"})
	}
	if p1 && p2 {
		o.violations = append(o.violations, Violation{now, o.spec.Process})
	}
}

// Stop ends sampling. It is safe to call more than once.
func (o *Observer) Stop() {
	select {
	case <-o.stop:
	default:
		close(o.stop)
	}
	<-o.done
}

// Samples is how many samples the observer has taken.
func (o *Observer) Samples() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.samples
}

// Violations returns every double-active instant seen so far.
func (o *Observer) Violations() []Violation {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Violation(nil), o.violations...)
}

// Err summarises the violations and sampling errors, nil when there were none.
func (o *Observer) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.violations) == 0 && len(o.errs) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "testenv: observer: %d double-active samples of %d", len(o.violations), o.samples)
	for i, v := range o.violations {
		if i == 10 {
			fmt.Fprintf(&b, "\n  … %d more", len(o.violations)-i)
			break
		}
		b.WriteString("\n  " + v.String())
	}
	for _, e := range o.errs {
		b.WriteString("\n  sampling error: " + e)
	}
	return fmt.Errorf("%s", b.String())
}
