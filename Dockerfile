FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir ".[all]"
ENV IMAGE2MODEL_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000 7860
CMD ["image2model", "serve", "--host", "0.0.0.0"]
