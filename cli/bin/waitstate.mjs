#!/usr/bin/env node
// The `waitstate` command. The code lives in ../dist (built by `npm run build`
// or any of `npm start`, `npm test`); this file exists at install time so npm
// can link the bin before the build.
import { main } from "../dist/index.js";

process.exitCode = await main(process.argv.slice(2));
