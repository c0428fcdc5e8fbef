#!/bin/sh
# install_corpus_packages.sh - install the Debian 12 packages the training corpus is built from.
#
# Run as root before datasets/build_corpus.py. Every package named here exists in Debian 12
# (bookworm); build_corpus.py reads only files these packages install (plus the Python 3.11
# standard library and the C headers already present on a build machine).
#   prose:     bible-kjv-text (King James Bible; its `bible` reader from bible-kjv), one doc per chapter
#   quotes:    fortunes, fortunes-min, fortunes-bofh-excuses, fortunes-debian-hints,
#              fortune-anarchism, tfortunes
#   code:      libpython3.11-stdlib (Python sources), libc6-dev, linux-libc-dev, libpython3.11-dev (C headers)
#   technical: python3.11-doc (HTML docs), manpages, manpages-dev, jargon-text, dict-foldoc,
#              debian-reference-en
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
    bible-kjv bible-kjv-text \
    fortunes fortunes-min fortunes-bofh-excuses fortunes-debian-hints fortune-anarchism tfortunes \
    libpython3.11-stdlib libpython3.11-dev libc6-dev linux-libc-dev \
    python3.11-doc manpages manpages-dev jargon-text dict-foldoc debian-reference-en \
    man-db groff-base
