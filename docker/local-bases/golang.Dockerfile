# dtbridge-local/golang: the layout of golang:* (/usr/local/go) with this machine's Go
# (CONTEXT/go/).
ARG BASE
FROM ${BASE}
COPY go /usr/local/go
ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:$PATH
