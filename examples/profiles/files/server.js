const http = require("http");
const port = Number(process.env.PORT || 3000);
http
  .createServer((req, res) => res.end("hello from the web-dev profile\n"))
  .listen(port, () => console.log(`listening on ${port}`));
