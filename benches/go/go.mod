module handoffbench

go 1.19
