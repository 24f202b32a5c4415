module github.com/oomguard/oomguard/bench/scan

go 1.26.8

require github.com/oomguard/oomguard v0.0.0

require (
	github.com/prometheus/procfs v0.23.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/oomguard/oomguard => ../..
