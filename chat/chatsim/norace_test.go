//go:build !race

package chatsim

const raceEnabled = false
