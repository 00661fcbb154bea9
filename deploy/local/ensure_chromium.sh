#!/usr/bin/env bash
# Makes sure headless Chromium and its WebDriver are installed for the browser tests
# (tests/browser): Debian's `chromium` and `chromium-driver`, plus a CJK font so the
# dashboard's Chinese labels render in screenshots. Does nothing when all are there;
# otherwise installs them with apt-get, through sudo only when not root.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
browser_found() { have chromium || have chromium-browser || have google-chrome; }
zh_font_found() { have fc-list && [ -n "$(fc-list :lang=zh 2>/dev/null)" ]; }
fail() {
    echo "ensure_chromium: $*" >&2
    echo "ensure_chromium: install by hand: apt-get install chromium chromium-driver" >&2
    exit 1
}

packages=()
browser_found || packages+=(chromium)
have chromedriver || packages+=(chromium-driver)
zh_font_found || packages+=(fonts-wqy-zenhei)
[ "${#packages[@]}" -eq 0 ] && exit 0

have apt-get || fail "missing ${packages[*]}, and apt-get is not available"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    have sudo || fail "missing ${packages[*]}; not root and sudo is not available"
    sudo=(sudo -n)
fi

echo "ensure_chromium: apt-get install ${packages[*]}" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { "${sudo[@]}" apt-get update -qq &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq "${packages[@]}"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    if browser_found && have chromedriver; then  # only the font failed: not fatal
        echo "ensure_chromium: warning: no CJK font, Chinese text may show as boxes" >&2
        exit 0
    fi
    fail "apt-get could not install ${packages[*]}"
fi

{ browser_found && have chromedriver; } ||
    fail "apt-get finished, but chromium or chromedriver is still not on PATH"
