// The example app DPL deploys on a fresh set-up: answers every request with a greeting.
// DPL runs it as a systemd unit in its container and gives it PORT.
const http = require('http');

const port = Number(process.env.PORT || 3000);

http.createServer((request, response) => {
  if (request.url === '/health') {
    response.writeHead(200, {'content-type': 'text/plain'});
    response.end('ok\n');
    return;
  }
  response.writeHead(200, {'content-type': 'text/plain; charset=utf-8'});
  response.end(`Hello from DPL: this app runs in an LXD container, behind the host's nginx.\n`);
}).listen(port, '0.0.0.0', () => console.log(`listening on ${port}`));
