# dtbridge-local/rust: the layout of rust:* (/usr/local/cargo/bin, /usr/local/rustup) with
# this machine's toolchain (CONTEXT/rust/), without rustup: cargo and rustc of the one toolchain
# where the official image has its proxies.
ARG BASE
FROM ${BASE}
COPY rust /usr/local/rustup/toolchains/local
RUN mkdir -p /usr/local/cargo/bin \
    && for tool in cargo rustc rustdoc; do \
         ln -s /usr/local/rustup/toolchains/local/bin/$tool /usr/local/cargo/bin/$tool; done
ENV CARGO_HOME=/usr/local/cargo RUSTUP_HOME=/usr/local/rustup PATH=/usr/local/cargo/bin:$PATH
