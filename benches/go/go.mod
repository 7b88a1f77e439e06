module handoffbench

go 1.21
