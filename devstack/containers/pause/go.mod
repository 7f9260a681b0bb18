module srs.invalid/pause

go 1.22
