package main

func greeting() string { return "hello from go v1" }
