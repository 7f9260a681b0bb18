module srs.invalid/ociwrapper

go 1.22
