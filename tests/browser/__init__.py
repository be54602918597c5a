"""Browser tests of the console (issue 18), in Debian's chromium through Playwright."""
