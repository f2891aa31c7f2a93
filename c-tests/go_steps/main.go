// go_steps: a Go program (with cgo, so that it is dynamically linked and LD_PRELOAD
// reaches it), for issue 14: the Go runtime installs a handler on every signal, drops
// the ones it did not ask for, runs goroutines on small stacks over several threads,
// and makes raw system calls. A checkpoint must still work, and the program go on.
//
// usage: go_steps [STEPS]
//
// Four goroutines each hash in a loop (each must have run by the end); a fifth sleeps
// in 5 ms slices (a sleep must not end early). Main prints `step N <digest>` of the step
// number and of a cgo call's result every 40 ms, then `done <digest>`.
package main

// int cgo_twice(int v) { return 2 * v; }
import "C"

import (
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	steps := 40
	if len(os.Args) > 1 {
		if n, err := strconv.Atoi(os.Args[1]); err == nil {
			steps = n
		}
	}
	var quit atomic.Bool
	var spins [4]atomic.Uint64
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h := fnv.New64a()
			for !quit.Load() {
				h.Write([]byte{byte(i)})
				spins[i].Add(1)
			}
		}(i)
	}
	var bad atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !quit.Load() {
			t0 := time.Now()
			time.Sleep(5 * time.Millisecond)
			if d := time.Since(t0); d < 5*time.Millisecond {
				bad.Store(fmt.Sprintf("a 5 ms sleep ended after %v", d))
			}
		}
	}()
	digest := fnv.New64a()
	for s := 1; s <= steps; s++ {
		time.Sleep(40 * time.Millisecond)
		if b := bad.Load(); b != nil {
			fmt.Printf("FAIL %s\n", b)
			os.Exit(1)
		}
		fmt.Fprintf(digest, "%d %d", s, int(C.cgo_twice(C.int(s))))
		fmt.Printf("step %d %016x\n", s, digest.Sum64())
	}
	quit.Store(true)
	wg.Wait()
	for i := range spins {
		if spins[i].Load() == 0 {
			fmt.Printf("FAIL goroutine %d never ran\n", i)
			os.Exit(1)
		}
	}
	fmt.Printf("done %016x\n", digest.Sum64())
}
