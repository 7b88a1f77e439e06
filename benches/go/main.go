// The Go reference for benches/blocking.rs (issue 4): the same per-call and
// hand-off latency scenarios, run with GOMAXPROCS=1 for the latency part.
// Run only if Go is installed: `cd benches/go && go run .`
package main

import (
	"fmt"
	"runtime"
	"sort"
	"syscall"
	"time"
)

const (
	call       = 20 * time.Millisecond
	rounds     = 250
	idleRounds = 30
	seqCalls   = 200000
)

func getpid() {
	// syscall.Syscall goes through entersyscall/exitsyscall (Getpid does not).
	syscall.Syscall(syscall.SYS_GETPID, 0, 0, 0)
}

func rawGetpid() {
	syscall.RawSyscall(syscall.SYS_GETPID, 0, 0, 0)
}

func perCall(name string, f func()) {
	var v []float64
	for r := 0; r < 7; r++ {
		t := time.Now()
		for i := 0; i < seqCalls; i++ {
			f()
		}
		v = append(v, float64(time.Since(t).Nanoseconds())/seqCalls)
	}
	sort.Float64s(v)
	fmt.Printf("%-32s %8.0f ns/op (median of 7)\n", name, v[len(v)/2])
}

func spin(d time.Duration) {
	t := time.Now()
	for time.Since(t) < d {
	}
}

// One round: A (this goroutine) spawns B behind it and enters a 20 ms
// nanosleep system call; returns B's first run - A's entry.
func round(busy time.Duration) time.Duration {
	done := make(chan time.Time, 1)
	result := make(chan time.Duration, 1)
	go func() {
		if busy > 0 {
			spin(busy)
		}
		go func() { done <- time.Now() }()
		entry := time.Now()
		ts := syscall.NsecToTimespec(int64(call))
		syscall.Nanosleep(&ts, nil)
		b := <-done
		result <- b.Sub(entry)
	}()
	return <-result
}

func latency(name string, n int, idle, busy time.Duration) {
	var v []time.Duration
	for i := 0; i < n; i++ {
		if idle > 0 {
			time.Sleep(idle)
		}
		v = append(v, round(busy))
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	p := func(q float64) time.Duration {
		k := int(q*float64(len(v)) + 0.999999)
		if k < 1 {
			k = 1
		}
		return v[k-1]
	}
	fmt.Printf("%-24s p50 %10v  p99 %10v  max %10v  (%d rounds)\n", name, p(0.5), p(0.99), v[len(v)-1], n)
}

func main() {
	perCall("raw getpid (RawSyscall)", rawGetpid)
	perCall("syscall.Syscall(getpid)", getpid)
	runtime.GOMAXPROCS(1)
	fmt.Println("hand-off latency, GOMAXPROCS=1, A in a 20 ms syscall, B queued:")
	latency("back to back", rounds, 0, 0)
	latency("after 200 ms idle", idleRounds, 200*time.Millisecond, 0)
	latency("after 10 ms busy", rounds, 0, 10*time.Millisecond)
}
