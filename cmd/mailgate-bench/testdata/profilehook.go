package main

// This file is not part of mailgate: mailgate-bench adds it to the build
// with go build -overlay when asked for a profile. With
// MAILGATE_BENCH_CPUPROFILE set, the daemon profiles its CPU from the start
// until SIGUSR1; with MAILGATE_BENCH_HEAPPROFILE set, SIGUSR2 writes a heap
// profile there and appends the runtime's memory statistics before and
// after a GC to the same path plus ".memstats" (goroutine stacks are not in
// a heap profile).

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
)

func init() {
	if path := os.Getenv("MAILGATE_BENCH_CPUPROFILE"); path != "" {
		benchCPUProfile(path)
	}
	if path := os.Getenv("MAILGATE_BENCH_HEAPPROFILE"); path != "" {
		benchHeapProfile(path)
	}
}

func benchCPUProfile(path string) {
	f, err := os.Create(path)
	if err != nil || pprof.StartCPUProfile(f) != nil {
		return
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGUSR1)
	go func() {
		<-stop
		pprof.StopCPUProfile()
		f.Close()
	}()
}

func benchHeapProfile(path string) {
	write := make(chan os.Signal, 1)
	signal.Notify(write, syscall.SIGUSR2)
	go func() {
		for range write {
			f, err := os.Create(path)
			if err != nil {
				continue
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			runtime.GC()
			runtime.ReadMemStats(&after)
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
			if m, err := os.OpenFile(path+".memstats", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintf(m, "before GC: HeapInuse %d HeapAlloc %d StackInuse %d Sys %d NumGC %d\n", before.HeapInuse, before.HeapAlloc, before.StackInuse, before.Sys, before.NumGC)
				fmt.Fprintf(m, "after GC: HeapInuse %d HeapAlloc %d StackInuse %d Sys %d NumGC %d\n", after.HeapInuse, after.HeapAlloc, after.StackInuse, after.Sys, after.NumGC)
				m.Close()
			}
		}
	}()
}
