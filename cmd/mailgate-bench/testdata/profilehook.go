package main

// This file is not part of mailgate: mailgate-bench adds it to the build
// with go build -overlay when asked for a profile. With
// MAILGATE_BENCH_CPUPROFILE set, the daemon profiles its CPU from the start
// until SIGUSR1; with MAILGATE_BENCH_HEAPPROFILE set, SIGUSR2 writes a heap
// profile there.

import (
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
			runtime.GC()
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}()
}
