package quorum

import (
	"bytes"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// useWorker makes d do its I/O with blocking calls on its worker, where
// tests can replace the calls.
func useWorker(d *device) {
	if d.aio != nil {
		d.aio.close(false, nil)
		d.aio = nil
	}
}

// openDirect opens an initialised image and skips when its filesystem
// refuses O_DIRECT (tmpfs), where the worker does the I/O.
func openDirect(t *testing.T, timeout time.Duration) *Disk {
	t.Helper()
	path := initImage(t, testParams)
	d, err := Open(path, Options{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if !d.Direct() {
		t.Skipf("%s: the filesystem refuses O_DIRECT, so I/O is blocking on the worker", path)
	}
	if d.dev.aio == nil {
		t.Fatalf("%s is open with O_DIRECT but without asynchronous I/O", path)
	}
	return d
}

// TestAIOReadsWhatItWrites: on O_DIRECT the slots go through
// asynchronous I/O, and what is written reads back, slot by slot.
func TestAIOReadsWhatItWrites(t *testing.T) {
	d := openDirect(t, 0)
	var submits atomic.Int32
	real := d.dev.aio.submit
	d.dev.aio.submit = func(cb *iocb) error {
		submits.Add(1)
		return real(cb)
	}
	for i := range 2 {
		want := &Slot{Counter: uint64(10 + i), Generation: 7, AckFrom: NoSlot, Payload: bytes.Repeat([]byte{byte('a' + i)}, 40)}
		if err := d.WriteSlot(i, want); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		got, err := d.ReadSlot(i)
		if err != nil {
			t.Fatal(err)
		}
		if got.Counter != uint64(10+i) || !bytes.Equal(got.Payload, bytes.Repeat([]byte{byte('a' + i)}, 40)) {
			t.Errorf("slot %d: counter %d payload %q", i, got.Counter, got.Payload)
		}
	}
	if n := submits.Load(); n != 4 {
		t.Errorf("%d asynchronous submissions for 2 writes and 2 reads", n)
	}
}

// TestHungAIO: a request the kernel does not complete in time fails with
// ErrHung, later I/O fails at once without reaching the device, and once
// the request completes the device serves again.
func TestHungAIO(t *testing.T) {
	d := openDirect(t, 50*time.Millisecond)
	a := d.dev.aio
	real := a.submit
	var held atomic.Pointer[iocb]
	var calls atomic.Int32
	a.submit = func(cb *iocb) error {
		calls.Add(1)
		c := *cb
		held.Store(&c)
		return nil // the device never answers
	}
	checkHung(t, d, &calls)
	// The device answers the held request at last.
	a.submit = real
	a.cb = *held.Load()
	if err := real(&a.cb); err != nil {
		t.Fatal(err)
	}
	waitServes(t, d)
}

// checkHung checks that a read of a device that does not answer fails
// with ErrHung in time, that later I/O fails at once while it hangs rather
// than pile up, and that calls counts one request that reached the device.
func checkHung(t *testing.T, d *Disk, calls *atomic.Int32) {
	t.Helper()
	start := time.Now()
	_, err := d.ReadSlot(0)
	if !errors.Is(err, ErrHung) || !strings.Contains(err.Error(), d.Path()) {
		t.Fatalf("hung read: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("hung read returned after %v", el)
	}
	for range 3 {
		if err := d.WriteSlot(0, &Slot{AckFrom: NoSlot}); !errors.Is(err, ErrHung) || !strings.Contains(err.Error(), "outstanding") {
			t.Fatalf("I/O behind a hung one: %v", err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d requests reached the device, want 1", n)
	}
}

// waitServes waits for a device whose hung I/O returned to serve again:
// until then every I/O fails with ErrHung.
func waitServes(t *testing.T, d *Disk) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := d.ReadSlot(0)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrHung) || time.Now().After(deadline) {
			t.Fatalf("after the device came back: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAIOCloseWhileHung: closing a device whose request is still the
// kernel's returns at once.
func TestAIOCloseWhileHung(t *testing.T) {
	d := openDirect(t, 20*time.Millisecond)
	d.dev.aio.submit = func(*iocb) error { return nil }
	if _, err := d.ReadSlot(1); !errors.Is(err, ErrHung) {
		t.Fatalf("hung read: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close waits for a hung request")
	}
}
