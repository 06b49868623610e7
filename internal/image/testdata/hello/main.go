// Command hello is the stand-in binary the image tests put in an image and
// then run from the unpacked layer.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Println("hello from the image:", len(os.Args)-1, "args")
}
