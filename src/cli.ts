#!/usr/bin/env node
console.log("kvmlab");
