# Build stage: compile wheels with build tools that the final image does not carry.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

# Final stage: the wheels only, run as an unprivileged user.
FROM python:3.12-slim
RUN useradd --system --create-home --uid 10001 baton \
 && mkdir -p /var/lib/baton && chown baton /var/lib/baton
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER baton
ENV BATON_HOST=0.0.0.0 \
    BATON_PORT=8080 \
    BATON_DATA_DIR=/var/lib/baton
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health').status == 200 else 1)"
ENTRYPOINT ["baton"]
CMD ["serve"]
