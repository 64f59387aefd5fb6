module.exports = { message: "hello from nodemon v1" };
