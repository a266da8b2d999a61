// Command fakesh is a tiny stand-in for /bin/sh in test base images (there
// is no Docker Hub to pull a real one from). It runs `sh -c SCRIPT`, where
// SCRIPT is commands joined by "&&": echo WORDS..., cat FILE, sleep SECONDS,
// exit CODE, get URL (an HTTP GET; exit 1 when it cannot connect). $NAME
// and ${NAME} expand from the environment.
package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != "-c" {
		fmt.Fprintln(os.Stderr, "usage: sh -c SCRIPT")
		os.Exit(2)
	}
	for _, cmd := range strings.Split(os.Args[2], "&&") {
		run(strings.Fields(os.ExpandEnv(cmd)))
	}
}

func run(args []string) {
	if len(args) == 0 {
		return
	}
	switch args[0] {
	case "echo":
		fmt.Println(strings.Join(args[1:], " "))
	case "cat":
		for _, f := range args[1:] {
			data, err := os.ReadFile(f)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Stdout.Write(data)
		}
	case "sleep":
		n, _ := strconv.ParseFloat(arg(args), 64)
		time.Sleep(time.Duration(n * float64(time.Second)))
	case "get":
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(arg(args))
		if err != nil {
			fmt.Fprintln(os.Stderr, "get:", err)
			os.Exit(1)
		}
		resp.Body.Close()
		fmt.Println("get:", resp.Status)
	case "exit":
		n, _ := strconv.Atoi(arg(args))
		os.Exit(n)
	default:
		fmt.Fprintf(os.Stderr, "sh: %s: not found\n", args[0])
		os.Exit(127)
	}
}

func arg(args []string) string {
	if len(args) < 2 {
		return ""
	}
	return args[1]
}
