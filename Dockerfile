# The notebook viewer's JavaScript bundle is built where npm is; the Python image then installs with it in place
# (the package build finds it up to date and needs no npm).
FROM node:20-slim AS viewer
WORKDIR /app/notebook_ext/js
COPY notebook_ext/js/package.json notebook_ext/js/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY notebook_ext/js/src ./src
RUN npm run build --silent

FROM python:3.11-slim
WORKDIR /app
COPY . /app
COPY --from=viewer /app/notebook_ext/static/viewer.js /app/notebook_ext/static/viewer.js
RUN pip install --no-cache-dir ".[all]"
ENV IMAGE2MODEL_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000 7860
CMD ["image2model", "serve", "--host", "0.0.0.0"]
